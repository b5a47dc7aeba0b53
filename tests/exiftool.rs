//! ExifTool, an independent reader, must find the canary markings; and a file that ExifTool
//! has rewritten must still be traced by its mark.
//!
//! Skipped with a notice when `exiftool` is not installed, unless FACEPROBE_REQUIRE_TOOLS=1
//! (set by scripts/test, which installs Debian's libimage-exiftool-perl).

mod common;

use common::Env;
use std::process::Command;

fn exiftool_available() -> bool {
    let found = Command::new("exiftool")
        .arg("-ver")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("FACEPROBE_REQUIRE_TOOLS").is_err(),
            "exiftool is required (apt-get install libimage-exiftool-perl)"
        );
        eprintln!("exiftool not installed: skipping (scripts/test installs it)");
    }
    found
}

#[test]
fn exiftool_reads_the_markings_and_rewrites_keep_the_token() {
    if !exiftool_available() {
        return;
    }
    let env = Env::new();
    let line = env.render(1, None, "out").remove(0);
    let file = line["file"].as_str().unwrap();
    let token = line["token"].as_str().unwrap();

    let o = Command::new("exiftool")
        .args(["-j", "-n", "-G1", "-XMP:all", file])
        .output()
        .unwrap();
    assert!(o.status.success());
    let tags: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tags = &tags[0];
    assert_eq!(
        tags["XMP-plus:DataMining"], "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED",
        "{tags}"
    );
    assert_eq!(tags["XMP-fp:Token"], token, "{tags}");
    let rights = tags["XMP-dc:Rights"].as_str().unwrap();
    assert!(rights.contains("Synthetic canary image"), "{rights}");
    assert!(
        rights.contains("no consent to biometric processing"),
        "{rights}"
    );
    assert!(rights.contains("data mining prohibited"), "{rights}");
    assert!(tags["XMP-xmpRights:UsageTerms"]
        .as_str()
        .unwrap()
        .contains("no consent"));

    // ExifTool rewrites the whole packet when it edits a tag.
    let o = Command::new("exiftool")
        .args(["-overwrite_original", "-XMP-dc:Title=reposted", file])
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = env.run(&["match", "--json", file]);
    let res: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(res["matches"][0]["token"], token, "{res}");
    assert_eq!(res["matches"][0]["how"], "xmp");
}
