//! The evidence report, the document a case handler and a lawyer read: `rapport.pdf` /
//! `report.pdf` (Typst, fonts embedded) and the same content as one self-contained HTML page.
//! It renders the [`model::Report`] the bundle builder gathered and nothing else: it never
//! reads the store, and it never lets a client string become markup in either format.

pub mod model;

mod chart;
mod doc;
mod fmt;
mod html;
mod pdf;
mod view;

use std::collections::BTreeMap;

pub use chart::{axis_max, chart_svg};
pub use fmt::{cut, int, visible};
pub use view::reason_sentence;

/// The report's language. The CNIL annex is in French in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report chart: {0}")]
    Chart(String),
    #[error("report data could not be encoded for the PDF template: {0}")]
    Data(String),
    #[error("report PDF (Typst): {0}")]
    Typst(String),
}

/// The PDF report. `images` maps bundle paths (`canaries/<token>.jpg`, as in
/// [`model::Canary::file`]) to JPEG bytes; a missing or undecodable image is drawn as an empty
/// frame rather than failing the report.
pub fn pdf(
    report: &model::Report,
    images: &BTreeMap<String, Vec<u8>>,
    lang: Lang,
) -> Result<Vec<u8>, ReportError> {
    let doc = view::build(report, images, lang);
    let chart = chart_svg(report, lang)?;
    let thumbs: Vec<&[u8]> = doc
        .images
        .iter()
        .filter_map(|f| images.get(f).map(Vec::as_slice))
        .collect();
    pdf::render(&doc, &chart, &thumbs, report.created_ms)
}

/// The same report as one HTML page: inline CSS, inline SVG chart, thumbnails as `data:` URIs,
/// no JavaScript. A chart that cannot be drawn is left out rather than failing the page.
pub fn html(report: &model::Report, images: &BTreeMap<String, Vec<u8>>, lang: Lang) -> String {
    let doc = view::build(report, images, lang);
    let chart = chart_svg(report, lang).unwrap_or_default();
    html::render(&doc, &chart, images)
}

#[cfg(test)]
pub(crate) mod sample;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::model::*;
    use super::{fmt, html, pdf, sample, Lang};

    /// The PDF's text, when poppler's pdftotext is installed (it is where reports are checked).
    fn pdf_text(pdf: &[u8]) -> Option<String> {
        let mut child = Command::new("pdftotext")
            .args(["-enc", "UTF-8", "-", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(pdf).ok()?;
        let out = child.wait_with_output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).replace('\u{200b}', ""))
    }

    #[test]
    fn pdf_is_a_pdf_with_the_actor_key_as_text() {
        let r = sample::report();
        let images = sample::images(&r);
        for lang in [Lang::Fr, Lang::En] {
            let bytes = pdf(&r, &images, lang).unwrap();
            assert!(bytes.starts_with(b"%PDF"));
            if let Some(text) = pdf_text(&bytes) {
                let flat: String = text.split_whitespace().collect();
                assert!(flat.contains(&r.actor.key), "key not in the PDF text");
                assert!(flat.contains(&r.bundle_id));
                assert!(text.contains("CNIL"));
            }
        }
    }

    #[test]
    fn hostile_strings_stay_text_in_the_pdf() {
        let r = sample::hostile();
        let images = sample::images(&r);
        let bytes = pdf(&r, &images, Lang::Fr).expect("hostile data must not break the template");
        assert!(bytes.starts_with(b"%PDF"));
        if let Some(text) = pdf_text(&bytes) {
            let flat: String = text.split_whitespace().collect();
            for s in [
                "<script>alert(1)</script>",
                "#setpage(width:1pt)",
                "\"])#panic(\"x\")",
                "$math$*bold*",
            ] {
                assert!(flat.contains(s), "{s:?} not shown literally");
            }
            assert!(
                flat.contains("ctl\\u{0}\\u{1}\\u{7}"),
                "control characters not made visible"
            );
            assert!(flat.contains("rtl\\u{202e}txt.exe"));
            assert!(flat.contains("line\\u{2028}sep\\u{2029}para"));
            assert!(!text.contains('\u{202e}') && !text.contains('\u{2028}'));
            // A page set to 1pt wide would make every word its own line; the pages are A4.
            assert!(text.lines().count() < 20_000);
        }
    }

    #[test]
    fn hostile_strings_are_escaped_in_the_html() {
        let r = sample::hostile();
        let page = html(&r, &sample::images(&r), Lang::En);
        assert!(
            !page.contains("<script"),
            "an unescaped <script> reached the HTML"
        );
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains('\u{202e}') && !page.contains('\u{0}') && !page.contains('\u{1b}'));
        assert!(page.contains("rtl\\u{202e}txt.exe"));
        assert!(page.contains("line\\u{2028}sep\\u{2029}para") && !page.contains('\u{2028}'));
        assert!(page.contains("#panic"));
        assert!(page.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn html_is_self_contained() {
        let r = sample::report();
        let page = html(&r, &sample::images(&r), Lang::Fr);
        assert!(page.contains("data:image/jpeg;base64,"));
        assert!(page.contains("<svg"));
        assert!(!page.contains("http-equiv=\"refresh\""));
        assert!(page.contains("Annexe — texte pour le formulaire de plainte de la CNIL"));
        assert!(page.contains("[Nom, prénom ou raison sociale du plaignant]"));
    }

    #[test]
    fn empty_report_renders_with_sentences() {
        let r = Report {
            bundle_id: "evidence-empty".into(),
            ..Default::default()
        };
        let bytes = pdf(&r, &BTreeMap::new(), Lang::Fr).unwrap();
        assert!(bytes.starts_with(b"%PDF"));
        let page = html(&r, &BTreeMap::new(), Lang::Fr);
        assert!(page.contains("Aucune image trouvée ailleurs n'a été fournie."));
        let page = html(&r, &BTreeMap::new(), Lang::En);
        assert!(page.contains("No image found elsewhere was provided."));
    }

    #[test]
    fn bad_image_bytes_do_not_fail_the_pdf() {
        let r = sample::report();
        let mut images = BTreeMap::new();
        images.insert(
            r.canaries[0].file.clone(),
            b"\xff\xd8\xffnot a jpeg".to_vec(),
        );
        images.insert(r.canaries[1].file.clone(), b"<svg/>".to_vec());
        assert!(pdf(&r, &images, Lang::En).unwrap().starts_with(b"%PDF"));
    }

    #[test]
    fn numbers_and_dates_follow_the_language() {
        assert_eq!(fmt::int(Lang::Fr, 1234567), "1\u{202f}234\u{202f}567");
        assert_eq!(fmt::int(Lang::En, 1234567), "1,234,567");
        assert_eq!(fmt::int(Lang::En, 999), "999");
        assert_eq!(fmt::dec(Lang::Fr, 0.97, 2), "0,97");
        assert_eq!(fmt::dec(Lang::En, 1234.5, 1), "1,234.5");
        assert_eq!(fmt::datetime(1_796_289_245_000), "2026-12-03 09:14:05 UTC");
        assert_eq!(fmt::datetime(0), "—");
        assert_eq!(fmt::bytes(Lang::Fr, 18_400_000), "18,4\u{a0}Mo");
        assert_eq!(fmt::span(Lang::En, 40 * 60_000), "40 min");
        assert_eq!(fmt::visible("a\u{0}b\u{202e}c"), "a\\u{0}b\\u{202e}c");
    }
}
