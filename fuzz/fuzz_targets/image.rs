//! Found images: any bytes given to `match` (or uploaded to the dashboard) are an image decoded
//! within the `[match]` limits, or an error; never a panic, never more than the limits allow.
#![no_main]

use faceprobe::canary::marks;
use faceprobe::canary::matcher::decode_image;
use faceprobe::config::MatchConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let config = MatchConfig {
        max_dimension: 2048,
        max_decode_bytes: 32 << 20,
        ..MatchConfig::default()
    };
    let _ = marks::token_in_file(bytes);
    if let Ok((_, img)) = decode_image("fuzz", bytes.to_vec(), &config) {
        assert!(img.width() <= 2048 && img.height() <= 2048);
        assert!(img.width() > 0 && img.height() > 0);
    }
});
