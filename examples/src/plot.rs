//! Small PNG charts written with the `image` crate: a line chart with numbered axes and a
//! scatter plot coloured by class, plus the 2-D PCA projection the examples plot.

use std::path::Path;

use image::{Rgb, RgbImage};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
const LEFT: i64 = 70;
const RIGHT: i64 = 20;
const TOP: i64 = 20;
const BOTTOM: i64 = 40;

/// Ten distinguishable colours (matplotlib's `tab10`), one per class modulo 10.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// 3x5 glyphs of `0-9 . -`, one row per byte (3 low bits, left = 4).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        _ => return None,
    })
}

struct Canvas(RgbImage);

impl Canvas {
    fn new() -> Self {
        Self(RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255])))
    }

    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..WIDTH as i64).contains(&x) && (0..HEIGHT as i64).contains(&y) {
            self.0.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for s in 0..=steps {
            let x = x0 + (x1 - x0) * s / steps;
            let y = y0 + (y1 - y0) * s / steps;
            self.put(x, y, c);
        }
    }

    fn square(&mut self, (x, y): (i64, i64), r: i64, c: [u8; 3]) {
        for dy in -r..=r {
            for dx in -r..=r {
                self.put(x + dx, y + dy, c);
            }
        }
    }

    /// Text in the 3x5 font scaled by 2, right-aligned at `x` when `right`.
    fn text(&mut self, s: &str, x: i64, y: i64, right: bool) {
        let w = 8 * s.chars().count() as i64;
        let x0 = if right { x - w } else { x };
        for (i, ch) in s.chars().enumerate() {
            let Some(rows) = glyph(ch) else { continue };
            for (ry, bits) in rows.iter().enumerate() {
                for rx in 0..3 {
                    if bits & (4 >> rx) != 0 {
                        let (px, py) = (x0 + 8 * i as i64 + 2 * rx, y + 2 * ry as i64);
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.put(px + dx, py + dy, [0, 0, 0]);
                        }
                    }
                }
            }
        }
    }

    fn save(self, path: &Path) -> Result<(), String> {
        self.0
            .save(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Maps data coordinates to pixels inside the margins.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn new(xs: impl Iterator<Item = f64> + Clone, ys: impl Iterator<Item = f64> + Clone) -> Self {
        let range = |v: &mut dyn Iterator<Item = f64>| {
            let (lo, hi) = v
                .filter(|x| x.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(x), b.max(x))
                });
            if !lo.is_finite() {
                (0.0, 1.0)
            } else if hi - lo < 1e-12 {
                (lo - 0.5, hi + 0.5)
            } else {
                let pad = 0.05 * (hi - lo);
                (lo - pad, hi + pad)
            }
        };
        Self {
            x: range(&mut xs.clone()),
            y: range(&mut ys.clone()),
        }
    }

    fn px(&self, x: f64, y: f64) -> (i64, i64) {
        let w = (WIDTH as i64 - LEFT - RIGHT) as f64;
        let h = (HEIGHT as i64 - TOP - BOTTOM) as f64;
        let fx = (x - self.x.0) / (self.x.1 - self.x.0);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0);
        (
            LEFT + (fx * w).round() as i64,
            HEIGHT as i64 - BOTTOM - (fy * h).round() as i64,
        )
    }

    fn axes(&self, canvas: &mut Canvas, x_ticks: &[f64], decimals: usize) {
        let (bottom, left) = (HEIGHT as i64 - BOTTOM, LEFT);
        canvas.line((left, TOP), (left, bottom), [0, 0, 0]);
        canvas.line((left, bottom), (WIDTH as i64 - RIGHT, bottom), [0, 0, 0]);
        for i in 0..=4 {
            let v = self.y.0 + (self.y.1 - self.y.0) * i as f64 / 4.0;
            let (_, y) = self.px(self.x.0, v);
            canvas.line((left + 1, y), (WIDTH as i64 - RIGHT, y), [225, 225, 225]);
            canvas.line((left - 5, y), (left, y), [0, 0, 0]);
            canvas.text(&format!("{v:.decimals$}"), left - 8, y - 5, true);
        }
        for &t in x_ticks {
            let (x, _) = self.px(t, self.y.0);
            canvas.line((x, bottom), (x, bottom + 5), [0, 0, 0]);
            canvas.text(&format!("{t}"), x - 4, bottom + 10, false);
        }
    }
}

/// A line chart of `ys` against `xs` (e.g. a metric per epoch), with markers and numbered
/// axes, written as a PNG.
///
/// # Errors
/// When the file cannot be written.
pub fn line_chart(path: &Path, xs: &[f64], ys: &[f64], color: [u8; 3]) -> Result<(), String> {
    let mut canvas = Canvas::new();
    let frame = Frame::new(xs.iter().copied(), ys.iter().copied());
    frame.axes(&mut canvas, xs, 3);
    let points: Vec<(i64, i64)> = xs
        .iter()
        .zip(ys)
        .filter(|(_, y)| y.is_finite())
        .map(|(&x, &y)| frame.px(x, y))
        .collect();
    for w in points.windows(2) {
        for d in -1..=1 {
            canvas.line((w[0].0, w[0].1 + d), (w[1].0, w[1].1 + d), color);
        }
    }
    for &p in &points {
        canvas.square(p, 3, color);
    }
    canvas.save(path)
}

/// A scatter plot of 2-D points coloured by label ([`PALETTE`], label modulo 10), with a
/// legend of the labels, written as a PNG.
///
/// # Errors
/// When the file cannot be written.
///
/// # Panics
/// If `points` and `labels` differ in length.
pub fn scatter(path: &Path, points: &[[f32; 2]], labels: &[i64]) -> Result<(), String> {
    assert_eq!(
        points.len(),
        labels.len(),
        "scatter: points and labels differ in length"
    );
    let mut canvas = Canvas::new();
    let frame = Frame::new(
        points.iter().map(|p| f64::from(p[0])),
        points.iter().map(|p| f64::from(p[1])),
    );
    frame.axes(&mut canvas, &[], 1);
    for (p, &l) in points.iter().zip(labels) {
        let c = PALETTE[l.rem_euclid(10) as usize];
        canvas.square(frame.px(f64::from(p[0]), f64::from(p[1])), 1, c);
    }
    let mut classes: Vec<i64> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    for (i, &l) in classes.iter().enumerate() {
        let y = TOP + 6 + 16 * i as i64;
        let x = WIDTH as i64 - RIGHT - 40;
        canvas.square((x, y + 4), 4, PALETTE[l.rem_euclid(10) as usize]);
        canvas.text(&l.to_string(), x + 10, y, false);
    }
    canvas.save(path)
}

/// The projection of the rows of `data` (`[n, d]`, row-major) on their two principal axes
/// (centered; power iteration with deflation on the `d x d` covariance).
///
/// # Panics
/// If `data.len()` is not a multiple of `d`.
pub fn pca_2d(data: &[f32], d: usize) -> Vec<[f32; 2]> {
    assert_eq!(
        data.len() % d,
        0,
        "pca_2d: {} values are not rows of {d}",
        data.len()
    );
    let n = data.len() / d;
    let mut mean = vec![0.0f64; d];
    for row in data.chunks(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v) / n as f64;
        }
    }
    let mut cov = vec![0.0f64; d * d];
    for row in data.chunks(d) {
        let c: Vec<f64> = row
            .iter()
            .zip(&mean)
            .map(|(&v, m)| f64::from(v) - m)
            .collect();
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += c[i] * c[j];
            }
        }
    }
    let mut axes: Vec<Vec<f64>> = Vec::new();
    for k in 0..2 {
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i * (k + 1)) as f64 * 0.01).collect();
        for _ in 0..200 {
            let mut w: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum())
                .collect();
            for a in &axes {
                let dot: f64 = w.iter().zip(a).map(|(x, y)| x * y).sum();
                w.iter_mut().zip(a).for_each(|(x, y)| *x -= dot * y);
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-30 {
                break;
            }
            v = w.into_iter().map(|x| x / norm).collect();
        }
        axes.push(v);
    }
    data.chunks(d)
        .map(|row| {
            let proj = |a: &[f64]| {
                row.iter()
                    .zip(&mean)
                    .zip(a)
                    .map(|((&v, m), x)| (f64::from(v) - m) * x)
                    .sum::<f64>() as f32
            };
            [proj(&axes[0]), proj(&axes[1])]
        })
        .collect()
}
