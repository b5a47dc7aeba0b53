//! The document both renderers draw: sections of blocks (paragraphs, facts, tables, code,
//! thumbnails) whose every string is final, localized, inert text. The PDF template and the
//! HTML page only lay it out, so the two always say the same thing, and no client string ever
//! reaches a place where it could be read as markup.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Doc {
    pub lang: &'static str,
    pub title: String,
    pub bundle_id: String,
    /// Running header and footer words.
    pub running: String,
    pub page_word: String,
    pub of_word: String,
    pub contents_word: String,
    pub cover: Vec<Fact>,
    pub summary_title: String,
    pub summary: Vec<Span>,
    /// One-line status shown on the cover (level and score).
    pub badge: String,
    pub sections: Vec<Section>,
    /// Bundle paths of the thumbnails drawn, in order; `Thumb::image` indexes into it.
    pub images: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Section {
    pub title: String,
    /// The annex is not numbered.
    pub annex: bool,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Block {
    Para {
        spans: Vec<Span>,
    },
    /// A sentence standing for an empty table.
    Note {
        text: String,
    },
    Subheading {
        text: String,
    },
    Facts {
        rows: Vec<Fact>,
    },
    Table(Table),
    List {
        items: Vec<Vec<Span>>,
    },
    Code {
        caption: String,
        lines: Vec<CodeLine>,
    },
    /// Shell commands, one per line.
    Commands {
        lines: Vec<String>,
    },
    Chart {
        caption: String,
    },
    Gallery {
        items: Vec<Thumb>,
        more: Option<String>,
    },
    /// Text in a frame, to be copied as it stands.
    Paste {
        paras: Vec<Vec<Span>>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Span {
    pub text: String,
    /// `plain`, `mono`, `strong`, `em` or `blank` (a field the reader must fill in).
    pub style: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fact {
    pub label: String,
    pub value: Vec<Span>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
    pub total: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Column {
    pub header: String,
    /// `left` or `right`.
    pub align: &'static str,
    /// Share of the free width (Typst `fr`); 0 sizes the column to its content.
    pub grow: u32,
    pub mono: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CodeLine {
    pub number: u32,
    pub text: String,
    /// Set on a line the actor broke: `← enfreinte 60 fois`.
    pub mark: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Thumb {
    pub image: Option<usize>,
    pub token: String,
    pub time: String,
}

pub(crate) fn plain(text: impl Into<String>) -> Span {
    Span {
        text: text.into(),
        style: "plain",
    }
}

pub(crate) fn mono(text: impl Into<String>) -> Span {
    Span {
        text: text.into(),
        style: "mono",
    }
}

pub(crate) fn strong(text: impl Into<String>) -> Span {
    Span {
        text: text.into(),
        style: "strong",
    }
}

pub(crate) fn blank(text: impl Into<String>) -> Span {
    Span {
        text: text.into(),
        style: "blank",
    }
}

pub(crate) fn col(header: impl Into<String>, align: &'static str, grow: u32, mono: bool) -> Column {
    Column {
        header: header.into(),
        align,
        grow,
        mono,
    }
}

pub(crate) fn fact(label: impl Into<String>, value: Vec<Span>) -> Fact {
    Fact {
        label: label.into(),
        value,
    }
}

pub(crate) fn para(spans: Vec<Span>) -> Block {
    Block::Para { spans }
}

pub(crate) fn text(s: impl Into<String>) -> Block {
    Block::Para {
        spans: vec![plain(s)],
    }
}
