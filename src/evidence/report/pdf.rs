//! The PDF: a Typst [`World`] with the embedded fonts, the template as its only source, and the
//! data as virtual files (`data.json`, `chart.svg`, `img/<n>.jpg`). The template reads the data
//! with `json()`; no string from the report is ever spliced into Typst markup, so nothing a
//! client sent can be read as code. No file system, no network, no system fonts.

use std::collections::HashMap;
use std::sync::LazyLock;

use typst::diag::{FileError, FileResult, Severity, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Duration};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_layout::PagedDocument;

use super::doc::Doc;
use super::{fmt, ReportError};

const TEMPLATE: &str = include_str!("report.typ");

/// Fonts and library are built once per process: parsing the fonts is the slow part.
struct Shared {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

static SHARED: LazyLock<Shared> = LazyLock::new(|| {
    let fonts: Vec<Font> = typst_assets::fonts()
        .flat_map(|data| Font::iter(Bytes::new(data)))
        .collect();
    Shared {
        library: LazyHash::new(Library::default()),
        book: LazyHash::new(FontBook::from_fonts(&fonts)),
        fonts,
    }
});

fn id(path: &str) -> Result<FileId, ReportError> {
    let vpath = VirtualPath::new(path).map_err(|e| ReportError::Typst(format!("{path}: {e}")))?;
    Ok(FileId::new(RootedPath::new(VirtualRoot::Project, vpath)))
}

struct ReportWorld {
    main: Source,
    files: HashMap<FileId, Bytes>,
    created_ms: i64,
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        &SHARED.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &SHARED.book
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::NotSource)
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.main.id() {
            return Ok(Bytes::from_string(self.main.clone()));
        }
        self.files
            .get(&id)
            .cloned()
            .ok_or_else(|| FileError::NotFound(id.vpath().get_without_slash().into()))
    }

    fn font(&self, index: usize) -> Option<Font> {
        SHARED.fonts.get(index).cloned()
    }

    /// The bundle's creation date, so the same report always renders the same.
    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        let (y, m, d, ..) = fmt::ymd_hms(self.created_ms)?;
        Datetime::from_ymd(y, m, d)
    }
}

fn describe(diags: &[SourceDiagnostic]) -> String {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let hints: Vec<&str> = d.hints.iter().map(|h| h.v.as_str()).collect();
            if hints.is_empty() {
                d.message.to_string()
            } else {
                format!("{} (hint: {})", d.message, hints.join("; "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn render(
    doc: &Doc,
    chart_svg: &str,
    images: &[&[u8]],
    created_ms: i64,
) -> Result<Vec<u8>, ReportError> {
    let data = serde_json::to_vec(doc).map_err(|e| ReportError::Data(e.to_string()))?;
    let mut files = HashMap::new();
    files.insert(id("/data.json")?, Bytes::new(data));
    files.insert(id("/chart.svg")?, Bytes::new(chart_svg.as_bytes().to_vec()));
    for (n, bytes) in images.iter().enumerate() {
        files.insert(id(&format!("/img/{n}.jpg"))?, Bytes::new(bytes.to_vec()));
    }
    let world = ReportWorld {
        main: Source::new(id("/report.typ")?, TEMPLATE.to_string()),
        files,
        created_ms,
    };
    let compiled = typst::compile::<PagedDocument>(&world);
    // Typst memoizes across compilations; a long-running server must not keep every report.
    typst::comemo::evict(0);
    let document = compiled
        .output
        .map_err(|e| ReportError::Typst(describe(&e)))?;
    let mut options = typst_pdf::PdfOptions::default();
    // PDF/A needs a date; a report without one (never from the bundle builder) takes now.
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    };
    let date_ms = if fmt::ymd_hms(created_ms).is_some() {
        created_ms
    } else {
        now_ms()
    };
    if let Some((y, mo, d, h, mi, s)) = fmt::ymd_hms(date_ms) {
        options.timestamp =
            Datetime::from_ymd_hms(y, mo, d, h, mi, s).map(typst_pdf::Timestamp::new_utc);
    }
    options.ident = typst::foundations::Smart::Custom(doc.bundle_id.clone());
    // PDF/A-2b: the archival form an authority keeps, every font embedded, no external content.
    options.standards = typst_pdf::PdfStandards::new(&[typst_pdf::PdfStandard::A_2b])
        .map_err(|e| ReportError::Typst(e.message().to_string()))?;
    typst_pdf::pdf(&document, &options).map_err(|e| ReportError::Typst(describe(&e)))
}
