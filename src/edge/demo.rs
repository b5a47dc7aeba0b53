//! The demo site: a small gallery that stands in for an upstream when none is configured, so
//! the first `faceprobe serve` shows the whole loop (pages, CSS, JS, images, robots.txt with a
//! private section) on a new machine. Its images are landscapes drawn at start-up: no faces.

use super::Body;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;
use tiny_skia::{
    Color, GradientStop, LinearGradient, Paint, PathBuilder, Pixmap, Point, SpreadMode, Transform,
};

const GALLERIES: usize = 3;
const PER_GALLERY: usize = 4;

/// robots.txt of the demo site (faceprobe adds its own rule to it).
pub const ROBOTS: &str = "User-agent: *\nDisallow: /private/\n";

const CSS: &str = "body{font-family:Georgia,serif;margin:0;background:#f6f3ee;color:#222}\
header{background:#2d3b45;color:#fff;padding:1rem 2rem}header a{color:#fff;margin-right:1rem}\
main{padding:1rem 2rem;max-width:60rem}.grid{display:grid;grid-template-columns:repeat(2,1fr);gap:1rem}\
figure{margin:0;background:#fff;padding:.5rem;box-shadow:0 1px 3px #0003}img{max-width:100%;display:block}\
footer{padding:1rem 2rem;color:#666;border-top:1px solid #ddd}";

const JS: &str = "document.addEventListener('DOMContentLoaded',function(){\
var n=document.querySelectorAll('figure').length;var f=document.getElementById('count');\
if(f){f.textContent=n+' photographs';}});";

pub struct Demo {
    images: HashMap<String, Bytes>,
}

impl Demo {
    pub fn new() -> Demo {
        let mut images = HashMap::new();
        for i in 0..GALLERIES * PER_GALLERY {
            images.insert(format!("/static/img/{}.jpg", i + 1), landscape(i as u64));
        }
        Demo { images }
    }

    /// The demo site's answer to `path`.
    pub fn respond(&self, path: &str) -> Response<Body> {
        if let Some(img) = self.images.get(path) {
            return reply(StatusCode::OK, "image/jpeg", img.clone());
        }
        match path {
            "/" | "/index.html" => {
                let mut links = String::new();
                for g in 1..=GALLERIES {
                    links.push_str(&format!(
                        "<li><a href=\"/gallery/{g}\">Gallery {g}</a></li>"
                    ));
                }
                page(
                    "Landscapes",
                    &format!(
                        "<p>Photographs of places, by the demo studio.</p><ul>{links}</ul>\
                         <figure><img src=\"/static/img/1.jpg\" alt=\"Hills\" width=\"320\" height=\"200\"></figure>"
                    ),
                )
            }
            "/about" => page(
                "About",
                "<p>This demo site stands in for your own while faceprobe runs without an \
                 upstream. Set <code>serve.upstream</code> (or <code>--upstream URL</code>) to \
                 put faceprobe in front of your site.</p>",
            ),
            "/private/" | "/private" => page(
                "Private",
                "<p>Disallowed by robots.txt. A polite crawler never reads this page.</p>",
            ),
            "/static/site.css" => reply(
                StatusCode::OK,
                "text/css",
                Bytes::from_static(CSS.as_bytes()),
            ),
            "/static/site.js" => reply(
                StatusCode::OK,
                "application/javascript",
                Bytes::from_static(JS.as_bytes()),
            ),
            _ => {
                if let Some(g) = path
                    .strip_prefix("/gallery/")
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|g| (1..=GALLERIES).contains(g))
                {
                    let mut figs = String::new();
                    for i in 0..PER_GALLERY {
                        let n = (g - 1) * PER_GALLERY + i + 1;
                        figs.push_str(&format!(
                            "<figure><img src=\"/static/img/{n}.jpg\" alt=\"Landscape {n}\" \
                             width=\"320\" height=\"200\"><figcaption>Landscape {n}</figcaption></figure>"
                        ));
                    }
                    let next = if g < GALLERIES {
                        format!("<p><a href=\"/gallery/{}\">Next gallery</a></p>", g + 1)
                    } else {
                        String::new()
                    };
                    return page(
                        &format!("Gallery {g}"),
                        &format!("<p id=\"count\"></p><div class=\"grid\">{figs}</div>{next}"),
                    );
                }
                let mut r = page("Not found", "<p>No such page.</p>");
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
        }
    }
}

impl Default for Demo {
    fn default() -> Self {
        Demo::new()
    }
}

fn page(title: &str, content: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title} · faceprobe demo</title><link rel=\"stylesheet\" href=\"/static/site.css\">\
         <script src=\"/static/site.js\" defer></script></head>\n<body>\n\
         <header><a href=\"/\">Home</a><a href=\"/gallery/1\">Galleries</a><a href=\"/about\">About</a></header>\n\
         <main><h1>{title}</h1>\n{content}\n</main>\n\
         <footer>faceprobe demo site</footer>\n</body></html>\n"
    );
    reply(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from(html),
    )
}

fn reply(status: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let len = body.len();
    let mut r = Response::new(Full::new(body).map_err(|e| match e {}).boxed_unsync());
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = content_type.parse() {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    h.insert(http::header::CONTENT_LENGTH, len.into());
    r
}

/// A landscape: sky gradient, two ranges of hills, a sun. Deterministic per index.
fn landscape(i: u64) -> Bytes {
    let (w, h) = (320u32, 200u32);
    let Some(mut pm) = Pixmap::new(w, h) else {
        return Bytes::new();
    };
    let hue = (i * 37 % 100) as f32 / 100.0;
    let sky_top =
        Color::from_rgba(0.3 + 0.3 * hue, 0.5, 0.9 - 0.3 * hue, 1.0).unwrap_or(Color::WHITE);
    let sky_low = Color::from_rgba(0.95, 0.8 + 0.1 * hue, 0.6, 1.0).unwrap_or(Color::WHITE);
    let shader = LinearGradient::new(
        Point::from_xy(0.0, 0.0),
        Point::from_xy(0.0, h as f32),
        vec![
            GradientStop::new(0.0, sky_top),
            GradientStop::new(1.0, sky_low),
        ],
        SpreadMode::Pad,
        Transform::identity(),
    )
    .unwrap_or(tiny_skia::Shader::SolidColor(sky_top));
    let paint = Paint {
        shader,
        ..Paint::default()
    };
    pm.fill_rect(
        tiny_skia::Rect::from_xywh(0.0, 0.0, w as f32, h as f32)
            .unwrap_or(tiny_skia::Rect::from_xywh(0.0, 0.0, 1.0, 1.0).expect("unit rect")),
        &paint,
        Transform::identity(),
        None,
    );
    let solid = |r: f32, g: f32, b: f32| {
        let mut p = Paint::default();
        p.set_color_rgba8((r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8, 255);
        p.anti_alias = true;
        p
    };
    if let Some(sun) = PathBuilder::from_circle(60.0 + (i % 5) as f32 * 40.0, 55.0, 22.0) {
        pm.fill_path(
            &sun,
            &solid(1.0, 0.9, 0.5),
            tiny_skia::FillRule::Winding,
            Transform::identity(),
            None,
        );
    }
    for (layer, (base, shade)) in [(120.0f32, 0.45f32), (150.0, 0.3)].into_iter().enumerate() {
        let mut pb = PathBuilder::new();
        pb.move_to(0.0, h as f32);
        let phase = (i as f32 + layer as f32) * 1.3;
        for x in (0..=w).step_by(16) {
            let y = base
                - 25.0
                    * ((x as f32 / 50.0 + phase).sin() * 0.6
                        + (x as f32 / 23.0 + phase * 2.0).sin() * 0.4);
            pb.line_to(x as f32, y);
        }
        pb.line_to(w as f32, h as f32);
        pb.close();
        if let Some(path) = pb.finish() {
            pm.fill_path(
                &path,
                &solid(shade * 0.6, shade + 0.1 * hue, shade * 0.5),
                tiny_skia::FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }
    let rgb: Vec<u8> = pm
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let mut out = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut out, 85);
    if encoder
        .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .is_err()
    {
        return Bytes::new();
    }
    Bytes::from(out)
}
