//! Images to and from tensors: NCHW float in [-1, 1] <-> u8 gray or RGB, and
//! PNG grids of many images.
use crate::{Error, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Turns u8 pixels laid out NCHW into a float tensor in [-1, 1].
pub fn from_u8(data: &[u8], n: usize, c: usize, h: usize, w: usize) -> Result<Tensor> {
    let want = n * c * h * w;
    if data.len() != want {
        return Err(Error::Shape {
            what: "image bytes".into(),
            expected: format!("{n}x{c}x{h}x{w} = {want} bytes"),
            got: format!("{} bytes", data.len()),
        });
    }
    let t = Tensor::from_slice(data).f_view([n as i64, c as i64, h as i64, w as i64])?;
    Ok(u8_to_unit(&t))
}

/// Converts a u8 tensor (any shape) into float in [-1, 1].
pub fn u8_to_unit(t: &Tensor) -> Tensor {
    t.to_kind(Kind::Float) / 127.5 - 1.0
}

/// Converts float in [-1, 1] into u8 (clamped, rounded), keeping the shape.
pub fn unit_to_u8(t: &Tensor) -> Tensor {
    ((t.to_kind(Kind::Float).clamp(-1.0, 1.0) + 1.0) * 127.5).round().to_kind(Kind::Uint8)
}

/// Converts an NCHW float tensor in [-1, 1] into u8 bytes, NCHW order.
pub fn to_u8(t: &Tensor) -> Result<Vec<u8>> {
    let u = unit_to_u8(t).to_device(tch::Device::Cpu).contiguous();
    let n = u.numel();
    let mut out = vec![0u8; n];
    u.f_copy_data(&mut out, n)?;
    Ok(out)
}

/// How a grid is laid out.
#[derive(Debug, Clone)]
pub struct GridOptions {
    /// Images per row.
    pub ncol: usize,
    /// Pixels between cells (and around the grid).
    pub pad: usize,
    /// Background colour of the padding.
    pub background: [u8; 3],
    /// Optional colour of each cell's frame (drawn in the padding), one per
    /// image; used to mark held-out classes. `None` entries get no frame.
    pub borders: Option<Vec<Option<[u8; 3]>>>,
}

impl Default for GridOptions {
    fn default() -> Self {
        Self { ncol: 8, pad: 2, background: [0, 0, 0], borders: None }
    }
}

/// Lays out an NCHW batch (C = 1 or 3, values in [-1, 1]) as an RGB image.
pub fn grid_image(images: &Tensor, opts: &GridOptions) -> Result<image::RgbImage> {
    let size = images.size();
    if size.len() != 4 || !(size[1] == 1 || size[1] == 3) || size[0] == 0 {
        return Err(Error::Shape {
            what: "image batch for a grid".into(),
            expected: "[N>0, 1 or 3, H, W]".into(),
            got: format!("{size:?}"),
        });
    }
    let (n, c, h, w) = (size[0] as usize, size[1] as usize, size[2] as usize, size[3] as usize);
    if let Some(b) = &opts.borders {
        if b.len() != n {
            return Err(Error::Invalid(format!("grid: {} border colours for {n} images", b.len())));
        }
    }
    let bytes = to_u8(images)?;
    let ncol = opts.ncol.clamp(1, n);
    let nrow = n.div_ceil(ncol);
    let p = opts.pad.max(if opts.borders.is_some() { 2 } else { 0 });
    let (gw, gh) = (ncol * (w + p) + p, nrow * (h + p) + p);
    let mut img = image::RgbImage::from_pixel(gw as u32, gh as u32, image::Rgb(opts.background));
    for k in 0..n {
        let (x0, y0) = (p + (k % ncol) * (w + p), p + (k / ncol) * (h + p));
        if let Some(Some(col)) = opts.borders.as_ref().map(|b| b[k]) {
            let t = p.min(2);
            for y in y0 - t..y0 + h + t {
                for x in x0 - t..x0 + w + t {
                    img.put_pixel(x as u32, y as u32, image::Rgb(col));
                }
            }
        }
        let base = k * c * h * w;
        for y in 0..h {
            for x in 0..w {
                let px = if c == 1 {
                    let v = bytes[base + y * w + x];
                    [v, v, v]
                } else {
                    let at = |ch: usize| bytes[base + ch * h * w + y * w + x];
                    [at(0), at(1), at(2)]
                };
                img.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Rgb(px));
            }
        }
    }
    Ok(img)
}

/// Writes a grid of an NCHW batch as PNG, atomically (temp file + rename).
pub fn save_grid(path: impl AsRef<Path>, images: &Tensor, opts: &GridOptions) -> Result<()> {
    let path = path.as_ref();
    let img = grid_image(images, opts)?;
    crate::checkpoint::write_atomic(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| Error::Invalid(format!("{}: cannot write PNG: {e}", path.display())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u8_round_trip_is_exact() {
        let data: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        let t = from_u8(&data, 2, 1, 16, 16).unwrap();
        assert_eq!(t.size(), vec![2, 1, 16, 16]);
        assert!((t.min().double_value(&[]) + 1.0).abs() < 1e-6);
        assert!((t.max().double_value(&[]) - 1.0).abs() < 1e-6);
        assert_eq!(to_u8(&t).unwrap(), data);
    }

    #[test]
    fn wrong_byte_count_is_an_error() {
        let e = from_u8(&[0u8; 10], 1, 1, 4, 4).unwrap_err().to_string();
        assert!(e.contains("16 bytes") && e.contains("10 bytes"), "{e}");
    }

    #[test]
    fn grid_places_cells_and_borders() {
        // Two 2x2 RGB images: one red, one blue; second gets a green frame.
        let red = Tensor::from_slice(&[1.0f32, 1., 1., 1., -1., -1., -1., -1., -1., -1., -1., -1.]).view([1, 3, 2, 2]);
        let blue = Tensor::from_slice(&[-1.0f32, -1., -1., -1., -1., -1., -1., -1., 1., 1., 1., 1.]).view([1, 3, 2, 2]);
        let batch = Tensor::cat(&[red, blue], 0);
        let opts = GridOptions { ncol: 2, pad: 2, background: [0, 0, 0], borders: Some(vec![None, Some([0, 255, 0])]) };
        let img = grid_image(&batch, &opts).unwrap();
        assert_eq!((img.width(), img.height()), (2 * 4 + 2, 6));
        assert_eq!(img.get_pixel(2, 2).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(6, 2).0, [0, 0, 255]);
        assert_eq!(img.get_pixel(5, 2).0, [0, 255, 0]);
        assert_eq!(img.get_pixel(1, 2).0, [0, 0, 0]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        save_grid(&p, &batch, &opts).unwrap();
        let back = image::open(&p).unwrap().to_rgb8();
        assert_eq!(back, img);
    }

    #[test]
    fn grid_rejects_bad_shapes() {
        let t = Tensor::zeros([2, 2, 4, 4], (Kind::Float, tch::Device::Cpu));
        assert!(grid_image(&t, &GridOptions::default()).is_err());
    }
}
