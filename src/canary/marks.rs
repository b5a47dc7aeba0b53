//! Markings carried by every served canary: an XMP packet saying that data mining is
//! prohibited, that the face is synthetic and not consented to biometric processing, and
//! which token it is; and the JPEG encoding that embeds it.
//!
//! Reading marks back is done with maintained container and XML parsers (img-parts,
//! quick-xml): a found image is hostile input.

use super::Token;
use image::RgbImage;
use quick_xml::events::Event as XmlEvent;
use quick_xml::name::ResolveResult;

/// PLUS "Data Mining" value that prohibits all mining of the image.
pub const DMI_PROHIBITED: &str = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED";
/// XMP namespace of faceprobe's own fields.
pub const FP_NS: &str = "urn:faceprobe:xmp:1.0/";
/// The rights notice, in English.
pub const NOTICE_EN: &str = "Synthetic canary image; no consent to biometric processing; data mining prohibited. This face belongs to no real person: it was generated to detect unauthorised collection of facial images (GDPR Art. 9, EU AI Act Art. 5(1)(e)).";
/// The rights notice, in French.
pub const NOTICE_FR: &str = "Image leurre synthétique ; aucun consentement au traitement biométrique ; fouille de données interdite. Ce visage n'appartient à aucune personne réelle : il a été généré pour détecter la collecte non autorisée d'images faciales (RGPD art. 9, AI Act art. 5(1)(e)).";
/// Response headers every canary carries, as (name, value).
pub const RESPONSE_HEADERS: [(&str, &str); 2] = [
    ("X-Robots-Tag", "noai, noimageai"),
    ("tdm-reservation", "1"),
];

const XMP_APP1_PREFIX: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const PNG_XMP_KEYWORD: &[u8] = b"XML:com.adobe.xmp";

/// Why a canary could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode canary JPEG: {0}")]
pub struct EncodeError(#[from] jpeg_encoder::EncodingError);

/// The XMP packet of one canary.
pub fn xmp_packet(token: &Token) -> String {
    format!(
        r#"<?xpacket begin="{bom}" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"
    xmlns:fp="{FP_NS}"
    plus:DataMining="{DMI_PROHIBITED}"
    xmpRights:Marked="True"
    fp:Token="{token}">
   <dc:identifier>faceprobe:{token}</dc:identifier>
   <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{NOTICE_EN}</rdf:li><rdf:li xml:lang="fr">{NOTICE_FR}</rdf:li></rdf:Alt></dc:rights>
   <xmpRights:UsageTerms><rdf:Alt><rdf:li xml:lang="x-default">{NOTICE_EN}</rdf:li><rdf:li xml:lang="fr">{NOTICE_FR}</rdf:li></rdf:Alt></xmpRights:UsageTerms>
   <plus:OtherConstraints><rdf:Alt><rdf:li xml:lang="x-default">{NOTICE_EN}</rdf:li></rdf:Alt></plus:OtherConstraints>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="r"?>"#,
        bom = '\u{feff}',
    )
}

/// Encodes a rendered canary as the JPEG that is served, XMP included.
pub fn encode_jpeg(img: &RgbImage, token: &Token, quality: u8) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(img.len() / 4);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    // 4:2:0 like almost every JPEG on the web: a canary should look like any photo.
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    let mut app1 = XMP_APP1_PREFIX.to_vec();
    app1.extend_from_slice(xmp_packet(token).as_bytes());
    encoder.add_app_segment(1, app1)?;
    let side = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    encoder.encode(
        img.as_raw(),
        side(img.width()),
        side(img.height()),
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

/// The XMP packets embedded in a JPEG, PNG or WebP file (none for other formats or on any
/// container error: a missing mark is not an error, the hash path still runs).
pub fn xmp_packets(file: &[u8]) -> Vec<Vec<u8>> {
    let bytes = img_parts::Bytes::copy_from_slice(file);
    if file.starts_with(&[0xFF, 0xD8]) {
        if let Ok(jpeg) = img_parts::jpeg::Jpeg::from_bytes(bytes) {
            return jpeg
                .segments_by_marker(img_parts::jpeg::markers::APP1)
                .filter_map(|s| s.contents().strip_prefix(XMP_APP1_PREFIX))
                .map(<[u8]>::to_vec)
                .collect();
        }
    } else if file.starts_with(b"\x89PNG") {
        if let Ok(png) = img_parts::png::Png::from_bytes(bytes) {
            return png
                .chunks_by_type(*b"iTXt")
                .filter_map(|c| png_itxt_xmp(c.contents()))
                .collect();
        }
    } else if file.starts_with(b"RIFF") {
        if let Ok(webp) = img_parts::webp::WebP::from_bytes(bytes) {
            return webp
                .chunks_by_id(img_parts::webp::CHUNK_XMP)
                .filter_map(|c| c.content().data().map(|d| d.to_vec()))
                .collect();
        }
    }
    Vec::new()
}

/// The text of an uncompressed iTXt chunk whose keyword is the XMP one.
fn png_itxt_xmp(chunk: &[u8]) -> Option<Vec<u8>> {
    let rest = chunk.strip_prefix(PNG_XMP_KEYWORD)?.strip_prefix(&[0])?;
    // compression flag, method, then language tag and translated keyword, each NUL-ended
    let (&flag, rest) = rest.split_first()?;
    if flag != 0 {
        return None;
    }
    let rest = rest.get(1..)?;
    let lang_end = rest.iter().position(|&b| b == 0)?;
    let rest = &rest[lang_end + 1..];
    let kw_end = rest.iter().position(|&b| b == 0)?;
    Some(rest[kw_end + 1..].to_vec())
}

/// The token named by an XMP packet, if it names one: `fp:Token`, as attribute or element.
pub fn token_in_xmp(packet: &[u8]) -> Option<Token> {
    let mut reader = quick_xml::NsReader::from_reader(packet);
    let mut buf = Vec::new();
    let mut in_token_element = false;
    loop {
        let (ns, event) = reader.read_resolved_event_into(&mut buf).ok()?;
        let is_fp = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == FP_NS.as_bytes());
        match event {
            XmlEvent::Start(ref e) | XmlEvent::Empty(ref e) => {
                if is_fp && e.local_name().as_ref() == b"Token" {
                    in_token_element = true;
                }
                for attr in e.attributes().flatten() {
                    let (ans, local) = reader.resolve_attribute(attr.key);
                    let attr_fp =
                        matches!(ans, ResolveResult::Bound(n) if n.as_ref() == FP_NS.as_bytes());
                    if attr_fp && local.as_ref() == b"Token" {
                        let value = attr.unescape_value().ok()?;
                        return value.trim().parse().ok();
                    }
                }
            }
            XmlEvent::Text(ref t) if in_token_element => {
                let text = t.decode().ok()?;
                return text.trim().parse().ok();
            }
            XmlEvent::End(_) => in_token_element = false,
            XmlEvent::Eof => return None,
            _ => {}
        }
        buf.clear();
    }
}

/// The first token marked in an image file.
pub fn token_in_file(file: &[u8]) -> Option<Token> {
    xmp_packets(file).iter().find_map(|p| token_in_xmp(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::render::render_seeds;

    #[test]
    fn jpeg_carries_the_token_and_decodes() {
        let token = Token::random();
        let img = render_seeds(1, 2, 128);
        let jpeg = encode_jpeg(&img, &token, 90).unwrap();
        assert_eq!(token_in_file(&jpeg), Some(token));
        let decoded = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (128, 128));
        let packets = xmp_packets(&jpeg);
        let text = String::from_utf8(packets[0].clone()).unwrap();
        assert!(text.contains(DMI_PROHIBITED));
        assert!(text.contains("no consent to biometric processing"));
    }

    #[test]
    fn token_as_element_is_read_too() {
        let t = Token::random();
        let xmp = format!(
            r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:q="{FP_NS}"><q:Token>{t}</q:Token></rdf:Description></rdf:RDF></x:xmpmeta>"#
        );
        assert_eq!(token_in_xmp(xmp.as_bytes()), Some(t));
    }

    #[test]
    fn token_outside_our_namespace_is_ignored() {
        let t = Token::random();
        let xmp = format!(r#"<a xmlns:fp="urn:other"><fp:Token>{t}</fp:Token></a>"#);
        assert_eq!(token_in_xmp(xmp.as_bytes()), None);
    }

    #[test]
    fn hostile_bytes_find_nothing() {
        assert_eq!(token_in_file(b""), None);
        assert_eq!(token_in_file(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF]), None);
        assert_eq!(token_in_file(b"\x89PNG\r\n\x1a\n\0\0"), None);
        assert_eq!(token_in_file(b"RIFF\xff\xff\xff\xffWEBP"), None);
        assert_eq!(token_in_xmp(b"<a><b fp:Token='x'"), None);
    }

    #[test]
    fn stripped_jpeg_has_no_token() {
        let img = render_seeds(1, 2, 64);
        let mut plain = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 80)
            .encode_image(&img)
            .unwrap();
        assert_eq!(token_in_file(&plain), None);
    }
}
