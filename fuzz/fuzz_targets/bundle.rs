//! The bundle reader of `evidence verify`: any bytes as a bundle's zip are a report of checks
//! or an error, never a panic. (A bundle that verifies can only come from faceprobe's key.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("case.zip");
    std::fs::write(&file, bytes).expect("the input written");
    let _ = faceprobe::evidence::verify::verify(&file, None);
});
