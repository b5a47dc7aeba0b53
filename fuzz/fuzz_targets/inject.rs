//! Planting the canary block: any bytes as a page, in any of the ASCII-compatible encodings a
//! page may declare, come back with the block planted exactly once, within the rewriter's
//! memory limit, and the remembered placement gives the same bytes as the first parse.
#![no_main]

use faceprobe::edge::inject::{encoding_of, Placements};
use libfuzzer_sys::fuzz_target;

const CHARSETS: [&str; 8] = [
    "utf-8",
    "windows-1252",
    "shift_jis",
    "euc-jp",
    "euc-kr",
    "gbk",
    "iso-8859-2",
    "big5",
];
const MARK: &[u8] = b"FPCANARYBLOCK";

fuzz_target!(|input: (u8, &[u8])| {
    let (charset, doc) = input;
    let content_type = format!(
        "text/html; charset={}",
        CHARSETS[charset as usize % CHARSETS.len()]
    );
    let Some(encoding) = encoding_of(&content_type) else {
        return;
    };
    let placements = Placements::new(1 << 20);
    let markup = "<div hidden>FPCANARYBLOCK</div>";
    let count = |b: &[u8]| b.windows(MARK.len()).filter(|w| *w == MARK).count();
    if let Ok(out) = placements.plant(doc, encoding, markup) {
        assert_eq!(count(&out), count(doc) + 1, "planted exactly once");
        let again = placements
            .plant(doc, encoding, markup)
            .expect("planted before");
        assert_eq!(again, out, "the remembered placement is the parsed one");
    }
});
