//! Planting canary markup in HTML responses, streamed: a real HTML rewriter (`lol_html`)
//! places it before `</body>` as bytes flow, whatever the size, decompressing and
//! recompressing gzip, deflate and brotli bodies on the way. Never string search.

use super::Body;
use bytes::Bytes;
use http_body::Frame;
use lol_html::html_content::ContentType;
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{element, end, AsciiCompatibleEncoding, MemorySettings};
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Memory the rewriter may use for one document (it buffers only across chunk boundaries).
const REWRITER_MEMORY: usize = 8 * 1024 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A content coding the edge can decode and re-encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    /// The coding named by a `Content-Encoding` value; `None` for one the edge cannot rewrite.
    pub fn parse(value: Option<&str>) -> Option<Coding> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Some(Coding::Identity),
            Some("gzip") | Some("x-gzip") => Some(Coding::Gzip),
            Some("deflate") => Some(Coding::Deflate),
            Some("br") => Some(Coding::Brotli),
            _ => None,
        }
    }
}

enum Decoder {
    Identity,
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
}

impl Decoder {
    fn new(c: Coding) -> Decoder {
        match c {
            Coding::Identity => Decoder::Identity,
            Coding::Gzip => Decoder::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            Coding::Deflate => Decoder::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
            Coding::Brotli => {
                Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), 8192)))
            }
        }
    }

    /// Feeds compressed bytes; returns what they decode to so far.
    fn feed(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Identity => Ok(data.to_vec()),
            Decoder::Gzip(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Deflate(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Brotli(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Identity => Ok(Vec::new()),
            Decoder::Gzip(d) => d.finish(),
            Decoder::Deflate(d) => d.finish(),
            Decoder::Brotli(d) => d.into_inner().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "truncated brotli stream")
            }),
        }
    }
}

enum Encoder {
    Identity,
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(c: Coding) -> Encoder {
        let level = flate2::Compression::new(5);
        match c {
            Coding::Identity => Encoder::Identity,
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(Vec::new(), level)),
            Coding::Deflate => Encoder::Deflate(flate2::write::ZlibEncoder::new(Vec::new(), level)),
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                8192,
                5,
                22,
            ))),
        }
    }

    /// Encodes plain bytes, flushing so a streamed page reaches the client as it comes.
    fn feed(&mut self, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Identity => Ok(data),
            Encoder::Gzip(e) => {
                e.write_all(&data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Deflate(e) => {
                e.write_all(&data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Brotli(e) => {
                e.write_all(&data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Identity => Ok(Vec::new()),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Deflate(e) => e.finish(),
            Encoder::Brotli(e) => Ok(e.into_inner()),
        }
    }
}

type Sink = Box<dyn FnMut(&[u8]) + Send>;

/// The response body with the markup planted.
pub struct Injected {
    inner: Body,
    decoder: Option<Decoder>,
    rewriter: Option<HtmlRewriter<'static, Sink>>,
    out: Arc<Mutex<Vec<u8>>>,
    encoder: Option<Encoder>,
    done: bool,
}

/// The encoding a document declares in its Content-Type (`charset=`), if the rewriter can
/// handle it; UTF-8 when none is declared. `None` for an encoding that is not ASCII-compatible.
pub fn encoding_of(content_type: &str) -> Option<AsciiCompatibleEncoding> {
    let label = content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_string())
    });
    let encoding = match label {
        Some(l) => encoding_rs::Encoding::for_label(l.as_bytes())?,
        None => encoding_rs::UTF_8,
    };
    AsciiCompatibleEncoding::new(encoding)
}

/// Where the rewriter put the markup: before the byte at this offset of the (decoded) source
/// document, which starts its `</body>` end tag; or `AT_END` (no `</body>`: appended).
const NOT_PLACED: usize = usize::MAX;
const AT_END: usize = usize::MAX - 1;

/// A sink for the rewriter's output that appends to a buffer the caller drains.
fn collecting(buf: Vec<u8>) -> (Arc<Mutex<Vec<u8>>>, Sink) {
    let out = Arc::new(Mutex::new(buf));
    let sink_out = out.clone();
    let sink: Sink = Box::new(move |chunk: &[u8]| {
        super::canary::lock(&sink_out).extend_from_slice(chunk);
    });
    (out, sink)
}

/// A rewriter that plants `markup` before the first `</body>`, or at the end of a document
/// without one, and notes in `at` where it did (an offset in the source, or `AT_END`).
fn rewriter(
    encoding: AsciiCompatibleEncoding,
    markup: Arc<str>,
    at: Arc<AtomicUsize>,
    sink: Sink,
) -> HtmlRewriter<'static, Sink> {
    let (a1, m1) = (at.clone(), markup.clone());
    let (a2, m2) = (at, markup);
    let settings = Settings {
        element_content_handlers: vec![element!("body", move |el| {
            let (a, m) = (a1.clone(), m1.clone());
            if el.can_have_content() {
                el.on_end_tag(lol_html::end_tag!(move |end| {
                    let offset = end.source_location().bytes().start;
                    if a.compare_exchange(NOT_PLACED, offset, Relaxed, Relaxed)
                        .is_ok()
                    {
                        end.before(&m, ContentType::Html);
                    }
                    Ok(())
                }))?;
            }
            Ok(())
        })],
        document_content_handlers: vec![end!(move |end| {
            // No </body> in the document: the markup goes at its end, still in the body.
            if a2
                .compare_exchange(NOT_PLACED, AT_END, Relaxed, Relaxed)
                .is_ok()
            {
                end.append(&m2, ContentType::Html);
            }
            Ok(())
        })],
        encoding,
        memory_settings: MemorySettings {
            max_allowed_memory_usage: REWRITER_MEMORY,
            ..MemorySettings::default()
        },
        strict: false,
        ..Settings::new_send()
    };
    HtmlRewriter::new(settings, sink)
}

impl Injected {
    pub fn new(
        inner: Body,
        coding: Coding,
        encoding: AsciiCompatibleEncoding,
        markup: String,
    ) -> Injected {
        let (out, sink) = collecting(Vec::new());
        let at = Arc::new(AtomicUsize::new(NOT_PLACED));
        Injected {
            inner,
            decoder: Some(Decoder::new(coding)),
            rewriter: Some(rewriter(encoding, markup.into(), at, sink)),
            out,
            encoder: Some(Encoder::new(coding)),
            done: false,
        }
    }

    fn take_out(&mut self) -> Vec<u8> {
        std::mem::take(&mut *super::canary::lock(&self.out))
    }

    fn push(&mut self, plain: &[u8]) -> Result<Vec<u8>, BoxError> {
        if let Some(r) = self.rewriter.as_mut() {
            r.write(plain)?;
        }
        let rewritten = self.take_out();
        match self.encoder.as_mut() {
            Some(e) if !rewritten.is_empty() => Ok(e.feed(rewritten)?),
            _ => Ok(Vec::new()),
        }
    }

    fn finish(&mut self) -> Result<Vec<u8>, BoxError> {
        let mut tail = match self.decoder.take() {
            Some(d) => d.finish()?,
            None => Vec::new(),
        };
        let mut out = self.push(&std::mem::take(&mut tail))?;
        if let Some(r) = self.rewriter.take() {
            r.end()?;
        }
        let rest = self.take_out();
        if let Some(mut e) = self.encoder.take() {
            if !rest.is_empty() {
                out.extend(e.feed(rest)?);
            }
            out.extend(e.finish()?);
        }
        Ok(out)
    }
}

/// The next data chunk of an upstream body; trailers are dropped (the body was rewritten).
fn poll_data(inner: &mut Body, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
    loop {
        match http_body::Body::poll_frame(Pin::new(&mut *inner), cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }
}

impl http_body::Body for Injected {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match poll_data(&mut this.inner, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(data))) => {
                    let plain = match this.decoder.as_mut() {
                        Some(d) => d.feed(&data)?,
                        None => data.to_vec(),
                    };
                    let out = this.push(&plain)?;
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let out = this.finish()?;
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                }
            }
        }
    }
}

/// Where the rewriter placed the markup in documents it has rewritten, keyed by the documents'
/// bytes themselves (kept up to a memory budget, least recently used first out), so that a
/// page served again byte for byte (a static site) is not parsed again: the markup goes
/// where the parser put it last time in the identical document. Output is byte for byte what
/// the parser would write; only an identical document (and encoding) reuses a placement.
pub struct Placements {
    known: Mutex<Known>,
}

struct Known {
    /// Document -> (encoding name, offset of its `</body>` or `AT_END`).
    map: lru::LruCache<Vec<u8>, (&'static str, usize), foldhash::fast::RandomState>,
    bytes: usize,
    budget: usize,
}

impl Placements {
    /// Remembers placements in documents totalling at most `budget` bytes.
    pub fn new(budget: usize) -> Placements {
        Placements {
            known: Mutex::new(Known {
                map: lru::LruCache::unbounded_with_hasher(foldhash::fast::RandomState::default()),
                bytes: 0,
                budget,
            }),
        }
    }

    /// `doc` with `markup` planted before its `</body>` (or at its end when it has none), as
    /// one buffer, so that the page goes out in one write with its length declared.
    pub fn plant(
        &self,
        doc: &[u8],
        encoding: AsciiCompatibleEncoding,
        markup: &str,
    ) -> Result<Bytes, BoxError> {
        let name = <&'static encoding_rs::Encoding>::from(encoding).name();
        let known = super::canary::lock(&self.known).map.get(doc).copied();
        if let Some((_, at)) = known.filter(|(n, _)| *n == name) {
            let at = at.min(doc.len());
            let mut out = bytes::BytesMut::with_capacity(doc.len() + markup.len());
            out.extend_from_slice(&doc[..at]);
            out.extend_from_slice(markup.as_bytes());
            out.extend_from_slice(&doc[at..]);
            return Ok(out.freeze());
        }
        let (out, sink) = collecting(Vec::with_capacity(doc.len() + markup.len()));
        let at = Arc::new(AtomicUsize::new(NOT_PLACED));
        let mut r = rewriter(encoding, markup.into(), at.clone(), sink);
        r.write(doc)?;
        r.end()?;
        let at = at.load(Relaxed);
        let mut k = super::canary::lock(&self.known);
        if at != NOT_PLACED && doc.len() <= k.budget {
            if let Some((old, _)) = k.map.push(doc.to_vec(), (name, at)) {
                k.bytes -= old.len();
            }
            k.bytes += doc.len();
            while k.bytes > k.budget {
                match k.map.pop_lru() {
                    Some((old, _)) => k.bytes -= old.len(),
                    None => break,
                }
            }
        }
        drop(k);
        let out = std::mem::take(&mut *super::canary::lock(&out));
        Ok(Bytes::from(out))
    }
}

/// An HTML body small enough to read whole (its length is declared and at most `cap`), read
/// to its end: its chunks joined (copied only when there is more than one). A body longer
/// than it declared is an error, not a silently longer page. (`http_body_util::Limited` with
/// `collect` would do the same, but with its boxed error the connection future no longer
/// type-checks: a higher-ranked `From` bound.)
pub async fn read_whole(mut body: Body, cap: usize) -> Result<Bytes, BoxError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(data) = std::future::poll_fn(|cx| poll_data(&mut body, cx)).await {
        let data = data?;
        len += data.len();
        if len > cap {
            return Err("HTML body longer than declared".into());
        }
        chunks.push(data);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut page = bytes::BytesMut::with_capacity(len);
            for chunk in &chunks {
                page.extend_from_slice(chunk);
            }
            page.freeze()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn body_of(chunks: Vec<Vec<u8>>) -> Body {
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c)))),
        );
        http_body_util::StreamBody::new(stream).boxed_unsync()
    }

    fn run(body: Body, coding: Coding) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let injected = Injected::new(
            body,
            coding,
            encoding_of("text/html").unwrap(),
            "<i id=mark></i>".into(),
        );
        rt.block_on(async { injected.collect().await.unwrap().to_bytes().to_vec() })
    }

    #[test]
    fn markup_goes_before_the_body_end_tag_across_chunk_boundaries() {
        let page = b"<html><body><p>hi</p><script>var s='</body>';</script></bo".to_vec();
        let out = run(
            body_of(vec![page, b"dy></html>".to_vec()]),
            Coding::Identity,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "<html><body><p>hi</p><script>var s='</body>';</script><i id=mark></i></body></html>"
        );
    }

    #[test]
    fn a_page_without_body_end_gets_the_markup_at_its_end() {
        let out = run(body_of(vec![b"<p>fragment".to_vec()]), Coding::Identity);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<p>fragment<i id=mark></i>"
        );
    }

    #[test]
    fn gzip_bodies_are_decoded_rewritten_and_encoded_again() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"<html><body>x</body></html>").unwrap();
        let compressed = gz.finish().unwrap();
        let (a, b) = compressed.split_at(compressed.len() / 2);
        let out = run(body_of(vec![a.to_vec(), b.to_vec()]), Coding::Gzip);
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&out[..]), &mut plain)
            .unwrap();
        assert_eq!(plain, "<html><body>x<i id=mark></i></body></html>");
    }

    #[test]
    fn brotli_bodies_round_trip() {
        let mut br = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
        br.write_all(b"<body>y</body>").unwrap();
        let compressed = br.into_inner();
        let out = run(body_of(vec![compressed]), Coding::Brotli);
        let mut plain = Vec::new();
        brotli::BrotliDecompress(&mut &out[..], &mut plain).unwrap();
        assert_eq!(plain, b"<body>y<i id=mark></i></body>");
    }

    #[test]
    fn unknown_codings_and_charsets_are_refused() {
        assert_eq!(Coding::parse(Some("zstd")), None);
        assert_eq!(Coding::parse(Some("GZIP")), Some(Coding::Gzip));
        assert!(encoding_of("text/html; charset=utf-16").is_none());
        assert!(encoding_of("text/html; charset=\"windows-1252\"").is_some());
        let _ = Full::new(Bytes::new());
    }

    fn joined(page: Result<Bytes, BoxError>) -> Vec<u8> {
        page.unwrap().to_vec()
    }

    /// Pages the parser handles in different ways: the end tag in a script string, in a
    /// comment, in capitals with spaces, twice, missing, a fragment, non-UTF-8 bytes.
    const PAGES: [&[u8]; 8] = [
        b"<html><body><p>hi</p><script>var s='</body>';</script></body></html>",
        b"<html><body><!-- </body> --><p>x</p></BODY ></html>\n",
        b"<body>one</body><body>two</body>",
        b"<p>fragment",
        b"<!DOCTYPE html><html><head><title>t</title></head></html>",
        b"<html><body>caf\xe9 \xff\xfe broken bytes</body></html>",
        b"",
        b"<html><body><textarea></body></textarea></body></html>",
    ];

    #[test]
    fn a_remembered_placement_gives_the_parsers_bytes_exactly() {
        let placements = Placements::new(1 << 20);
        let utf8 = encoding_of("text/html").unwrap();
        for page in PAGES {
            let streamed = run(body_of(vec![page.to_vec()]), Coding::Identity);
            let page = &Bytes::from_static(page);
            let parsed = joined(placements.plant(page, utf8, "<i id=mark></i>"));
            assert_eq!(parsed, streamed, "first (parsed) plant of {page:?}");
            let remembered = joined(placements.plant(page, utf8, "<i id=mark></i>"));
            assert_eq!(remembered, streamed, "remembered plant of {page:?}");
            let other = joined(placements.plant(page, utf8, "<b>other token</b>"));
            let expected =
                String::from_utf8_lossy(&streamed).replace("<i id=mark></i>", "<b>other token</b>");
            assert_eq!(String::from_utf8_lossy(&other), expected, "{page:?}");
        }
        // Every page was remembered: the second and third plants did not parse again.
        assert_eq!(
            super::super::canary::lock(&placements.known).map.len(),
            PAGES.len()
        );
    }

    #[test]
    fn remembered_pages_stay_within_the_memory_budget() {
        let placements = Placements::new(100);
        let utf8 = encoding_of("text/html").unwrap();
        let page = |i: usize| format!("<body>page {i:02} {}</body>", "x".repeat(20)).into_bytes();
        for i in 0..10 {
            placements.plant(&page(i), utf8, "<i>").unwrap();
        }
        let k = super::super::canary::lock(&placements.known);
        assert!(k.bytes <= 100, "{} bytes kept", k.bytes);
        assert_eq!(k.bytes, k.map.iter().map(|(d, _)| d.len()).sum::<usize>());
        // The most recent pages are the ones kept.
        assert!(k.map.contains(&page(9)) && !k.map.contains(&page(0)));
        drop(k);
        // The same bytes in another encoding are parsed, not taken from the memory.
        let latin1 = encoding_of("text/html; charset=windows-1252").unwrap();
        let out = joined(placements.plant(&page(9), latin1, "<i>"));
        assert_eq!(
            out,
            format!("<body>page 09 {}<i></body>", "x".repeat(20)).into_bytes()
        );
    }

    #[test]
    fn a_whole_body_is_read_across_chunks_and_capped_at_its_declared_length() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let chunks = vec![b"<html><body>a</bo".to_vec(), b"dy></html>".to_vec()];
        let page = rt
            .block_on(read_whole(body_of(chunks.clone()), 27))
            .unwrap();
        assert_eq!(&page[..], b"<html><body>a</body></html>");
        // More bytes than declared: an error, not a silently longer page.
        assert!(rt.block_on(read_whole(body_of(chunks), 20)).is_err());
        assert!(rt
            .block_on(read_whole(body_of(vec![]), 0))
            .unwrap()
            .is_empty());
    }
}
