//! The HTML page: the same [`Doc`] as the PDF, laid out with maud (which escapes every value),
//! inline CSS, the chart as inline SVG, thumbnails as `data:` URIs. No JavaScript.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::doc::{Block, Doc, Span, Table};

const CSS: &str = include_str!("report.css");

fn span(s: &Span) -> Markup {
    html! {
        @match s.style {
            "mono" => code { (s.text) },
            "strong" => strong { (s.text) },
            "em" => em { (s.text) },
            "blank" => mark.blank { (s.text) },
            _ => (s.text),
        }
    }
}

fn spans(xs: &[Span]) -> Markup {
    html! { @for s in xs { (span(s)) } }
}

fn table(t: &Table) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { @for c in &t.columns { th class=(c.align) { (c.header) } } } }
                tbody {
                    @for row in &t.rows {
                        tr {
                            @for (i, cell) in row.iter().enumerate() {
                                @let c = &t.columns[i.min(t.columns.len() - 1)];
                                td class=(c.align) { @if c.mono { code { (cell) } } @else { (cell) } }
                            }
                        }
                    }
                }
                @if let Some(total) = &t.total {
                    tfoot { tr { @for (i, cell) in total.iter().enumerate() {
                        td class=(t.columns[i.min(t.columns.len() - 1)].align) { (cell) }
                    } } }
                }
            }
        }
    }
}

fn block(b: &Block, doc: &Doc, chart: &str, images: &BTreeMap<String, Vec<u8>>) -> Markup {
    html! {
        @match b {
            Block::Para { spans: s } => p { (spans(s)) },
            Block::Note { text } => p.note { (text) },
            Block::Subheading { text } => h3 { (text) },
            Block::Facts { rows } => dl.facts { @for r in rows { dt { (r.label) } dd { (spans(&r.value)) } } },
            Block::Table(t) => (table(t)),
            Block::List { items } => ul { @for it in items { li { (spans(it)) } } },
            Block::Code { lines, .. } => div.code { table {
                @for l in lines {
                    tr class=[l.mark.as_ref().map(|_| "hit")] {
                        td.n { (l.number) }
                        td.t { (l.text) }
                        td.m { @if let Some(m) = &l.mark { (m) } }
                    }
                }
            } },
            Block::Commands { lines } => pre.commands { @for l in lines { "$ " (l) "\n" } },
            // The SVG is made by plotters from numbers and our own labels only, never from
            // client strings, so it is inserted as it is.
            Block::Chart { caption } => figure.chart { (PreEscaped(chart)) figcaption { (caption) } },
            Block::Gallery { items, more } => {
                div.gallery {
                    @for it in items {
                        figure {
                            @match it.image.and_then(|i| doc.images.get(i)).and_then(|f| images.get(f)) {
                                Some(bytes) => { img src={ "data:image/jpeg;base64," (STANDARD.encode(bytes)) } alt=(it.token) width="256" height="256"; }
                                None => { div.missing {} }
                            }
                            figcaption { code { (it.token) } br; (it.time) }
                        }
                    }
                }
                @if let Some(m) = more { p.note { (m) } }
            },
            Block::Paste { paras } => div.paste { @for p in paras { p { (spans(p)) } } },
        }
    }
}

pub(crate) fn render(doc: &Doc, chart: &str, images: &BTreeMap<String, Vec<u8>>) -> String {
    let mut n = 0;
    let page = html! {
        (DOCTYPE)
        html lang=(doc.lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'";
                title { (doc.title) " — " (doc.bundle_id) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.cover {
                    h1 { (doc.title) }
                    p.badge { (doc.badge) }
                    dl.facts { @for r in &doc.cover { dt { (r.label) } dd { (spans(&r.value)) } } }
                    h2.summary { (doc.summary_title) }
                    p { (spans(&doc.summary)) }
                    nav {
                        h2.summary { (doc.contents_word) }
                        ol { @for s in doc.sections.iter().filter(|s| !s.annex) {
                            li { (s.title) }
                        } }
                        @for s in doc.sections.iter().filter(|s| s.annex) { p { (s.title) } }
                    }
                }
                main {
                    @for s in &doc.sections {
                        section class=[s.annex.then_some("annex")] {
                            h2 {
                                @if !s.annex { span.num { ({ n += 1; n }) "." } " " }
                                (s.title)
                            }
                            @for b in &s.blocks { (block(b, doc, chart, images)) }
                        }
                    }
                }
                footer { code { (doc.bundle_id) } }
            }
        }
    };
    page.into_string()
}
