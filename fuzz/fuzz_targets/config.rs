//! Config files: any text is a configuration or a list of problems, never a panic; a valid
//! one printed as the effective configuration reads back as the same configuration.
#![no_main]

use faceprobe::config::Config;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    let path = Path::new("fuzz.toml");
    if let Ok(config) = Config::parse(text, path) {
        let printed = config.to_toml_masked();
        // Masking changes secrets; what has none reads back the same.
        if !printed.contains("***") {
            let again =
                Config::parse(&printed, path).expect("the effective configuration is valid");
            assert_eq!(again, config);
        }
    }
});
