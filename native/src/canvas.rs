//! The report's pictures rasterised: Python lays out the chart (`workers/analysis/traffic/
//! charts.py`) as a list of drawing operations, this draws them and encodes the PNG.
//!
//! Why not Pillow, which drew them before: importing it cost every `analyze --out` and every
//! cold job 20-25 ms of CPU (its EXIF tag enums alone 7-8 ms), drawing and encoding two
//! pictures 14-20 ms more, and it was 22 MB of the worker image.  Here the shapes are
//! tiny-skia's, the glyphs ab_glyph's, the file the `png` crate's; the font is the one
//! Pillow's `load_default(size)` embeds (a subset of Aileron Regular, CC0: assets/README.md).

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use tiny_skia::{FillRule, Paint, PathBuilder, Pixmap, Rect, Stroke, Transform};

static FONT: &[u8] = include_bytes!("../assets/aileron-regular-subset.ttf");

/// The largest picture drawn (pixels a side): a chart is about 900 × 1,000.
pub const MAX_SIDE: u32 = 4096;

/// One drawing operation, in the picture's pixel coordinates (origin top left).
pub enum Op {
    /// A filled rectangle; both corners inclusive, as Pillow's `rectangle`.
    Fill { x0: f32, y0: f32, x1: f32, y1: f32, rgb: [u8; 3] },
    /// A rectangle's one-pixel outline.
    Outline { x0: f32, y0: f32, x1: f32, y1: f32, rgb: [u8; 3] },
    /// A polyline of `width` pixels through the points (anti-aliased).
    Line { points: Vec<(f32, f32)>, width: f32, rgb: [u8; 3] },
    /// A filled circle.
    Dot { x: f32, y: f32, r: f32, rgb: [u8; 3] },
    /// Text whose top (the font's ascender) starts at (x, y); `size` is the em in pixels.
    Text { x: f32, y: f32, size: f32, text: String, rgb: [u8; 3] },
}

fn paint(rgb: [u8; 3], anti_alias: bool) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(rgb[0], rgb[1], rgb[2], 255);
    p.anti_alias = anti_alias;
    p
}

fn fill(pixmap: &mut Pixmap, x0: f32, y0: f32, x1: f32, y1: f32, rgb: [u8; 3]) {
    // Pillow's corners are inclusive pixels; snapped to whole pixels for crisp edges.
    let (l, r) = (x0.min(x1).round(), x0.max(x1).round() + 1.0);
    let (t, b) = (y0.min(y1).round(), y0.max(y1).round() + 1.0);
    if let Some(rect) = Rect::from_ltrb(l, t, r, b) {
        pixmap.fill_rect(rect, &paint(rgb, false), Transform::identity(), None);
    }
}

/// Blend `rgb` over the opaque pixel at (x, y) with `coverage` (0..1).
fn blend(data: &mut [u8], width: u32, height: u32, x: i32, y: i32, coverage: f32, rgb: [u8; 3]) {
    if x < 0 || y < 0 || x as u32 >= width || y as u32 >= height || coverage <= 0.0 {
        return;
    }
    let a = coverage.min(1.0);
    let i = 4 * (y as usize * width as usize + x as usize);
    for (k, c) in rgb.iter().enumerate() {
        let old = f32::from(data[i + k]);
        data[i + k] = (old + (f32::from(*c) - old) * a).round() as u8;
    }
}

fn text(pixmap: &mut Pixmap, font: &FontRef<'_>, x: f32, y: f32, size: f32, s: &str, rgb: [u8; 3]) {
    // ab_glyph scales by the font's height (ascent - descent); Pillow's size is the em.
    let em = font.units_per_em().unwrap_or(1000.0);
    let scaled = font.as_scaled(PxScale::from(size * font.height_unscaled() / em));
    let (width, height) = (pixmap.width(), pixmap.height());
    let baseline = y + scaled.ascent();
    let mut pen = x;
    let mut previous = None;
    for c in s.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            pen += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scaled.scale(), ab_glyph::point(pen, baseline));
        pen += scaled.h_advance(id);
        previous = Some(id);
        if let Some(outlined) = font.outline_glyph(glyph) {
            let bounds = outlined.px_bounds();
            let data = pixmap.data_mut();
            outlined.draw(|gx, gy, coverage| {
                let (px, py) = (bounds.min.x as i32 + gx as i32, bounds.min.y as i32 + gy as i32);
                blend(data, width, height, px, py, coverage, rgb);
            });
        }
    }
}

/// Draw `ops` in order on a white `width` × `height` picture; the PNG file (8-bit RGB).
pub fn draw_png(width: u32, height: u32, ops: &[Op]) -> Result<Vec<u8>, String> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!("a picture of {width} × {height} pixels is out of bounds"));
    }
    let mut pixmap = Pixmap::new(width, height).ok_or("cannot allocate the picture")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    let font = FontRef::try_from_slice(FONT).map_err(|e| format!("the embedded font: {e}"))?;
    for op in ops {
        match op {
            Op::Fill { x0, y0, x1, y1, rgb } => fill(&mut pixmap, *x0, *y0, *x1, *y1, *rgb),
            Op::Outline { x0, y0, x1, y1, rgb } => {
                fill(&mut pixmap, *x0, *y0, *x1, *y0, *rgb);
                fill(&mut pixmap, *x0, *y1, *x1, *y1, *rgb);
                fill(&mut pixmap, *x0, *y0, *x0, *y1, *rgb);
                fill(&mut pixmap, *x1, *y0, *x1, *y1, *rgb);
            }
            Op::Line { points, width: w, rgb } => {
                let mut pb = PathBuilder::new();
                for (i, &(px, py)) in points.iter().enumerate() {
                    // +0.5: a one-pixel line through pixel centres, not across two rows.
                    if i == 0 {
                        pb.move_to(px + 0.5, py + 0.5);
                    } else {
                        pb.line_to(px + 0.5, py + 0.5);
                    }
                }
                if let Some(path) = pb.finish() {
                    let stroke = Stroke { width: *w, ..Stroke::default() };
                    pixmap.stroke_path(&path, &paint(*rgb, true), &stroke, Transform::identity(), None);
                }
            }
            Op::Dot { x, y, r, rgb } => {
                if let Some(path) = PathBuilder::from_circle(x + 0.5, y + 0.5, *r) {
                    pixmap.fill_path(&path, &paint(*rgb, true), FillRule::Winding, Transform::identity(), None);
                }
            }
            Op::Text { x, y, size, text: s, rgb } => text(&mut pixmap, &font, *x, *y, *size, s, *rgb),
        }
    }
    encode_rgb(&pixmap)
}

/// The opaque RGBA pixmap as an RGB PNG (a third smaller to compress than RGBA).
fn encode_rgb(pixmap: &Pixmap) -> Result<Vec<u8>, String> {
    let rgb: Vec<u8> = pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut out = Vec::with_capacity(rgb.len() / 20);
    let mut encoder = png::Encoder::new(&mut out, pixmap.width(), pixmap.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        (info.width, info.height, buf)
    }

    fn at(buf: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
        let i = 3 * (y * width + x) as usize;
        [buf[i], buf[i + 1], buf[i + 2]]
    }

    #[test]
    fn shapes_and_text_land_where_asked() {
        let ops = vec![
            Op::Fill { x0: 10.0, y0: 10.0, x1: 19.0, y1: 14.0, rgb: [200, 0, 0] },
            Op::Outline { x0: 30.0, y0: 30.0, x1: 40.0, y1: 40.0, rgb: [0, 0, 0] },
            Op::Text { x: 50.0, y: 5.0, size: 14.0, text: "DNS".into(), rgb: [0, 0, 255] },
        ];
        let (w, h, buf) = decode(&draw_png(100, 60, &ops).unwrap());
        assert_eq!((w, h), (100, 60));
        assert_eq!(at(&buf, w, 10, 10), [200, 0, 0]);
        assert_eq!(at(&buf, w, 19, 14), [200, 0, 0]);
        assert_eq!(at(&buf, w, 20, 14), [255, 255, 255]);
        assert_eq!(at(&buf, w, 30, 35), [0, 0, 0]);
        assert_eq!(at(&buf, w, 35, 35), [255, 255, 255]);
        let inked = (50..90)
            .flat_map(|x| (5..22).map(move |y| (x, y)))
            .filter(|&(x, y)| at(&buf, w, x, y)[2] > at(&buf, w, x, y)[0]);
        assert!(inked.count() > 20, "the text left no blue pixels");
        assert_eq!(at(&buf, w, 0, 0), [255, 255, 255]);
    }

    #[test]
    fn out_of_bounds_pictures_are_refused() {
        assert!(draw_png(0, 10, &[]).is_err());
        assert!(draw_png(10, MAX_SIDE + 1, &[]).is_err());
    }
}
