//! Pixel plumbing shared by the readers: decoding with limits, center-crop
//! and resize to a square, channel conversion, HWC <-> CHW.
use crate::{Error, Result};
use image::{imageops::FilterType, DynamicImage, GrayImage, RgbImage};
use rayon::prelude::*;
use std::path::Path;

/// Largest accepted image side, in pixels (decompression-bomb guard).
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Most memory one image decoder may allocate (decompression-bomb guard).
pub const MAX_IMAGE_ALLOC: u64 = 256 << 20;

/// Most memory a decoded data set may take as u8 pixels (8 GiB): a larger
/// `--size` is refused with a message instead of an allocation failure.
pub const MAX_DATASET_BYTES: usize = 8 << 30;

/// Checks `images` images of `channels` x `side` x `side` against
/// [`MAX_IMAGE_SIDE`] and [`MAX_DATASET_BYTES`].
pub fn check_decoded_size(images: usize, channels: usize, side: usize) -> crate::Result<()> {
    if side > MAX_IMAGE_SIDE as usize {
        return Err(crate::Error::Invalid(format!("size {side} is over the {MAX_IMAGE_SIDE} limit")));
    }
    let bytes = images.saturating_mul(channels).saturating_mul(side).saturating_mul(side);
    if bytes > MAX_DATASET_BYTES {
        return Err(crate::Error::Invalid(format!(
            "{images} images of {channels}x{side}x{side} take {:.1} GiB, over the {} GiB limit; choose a smaller --size",
            bytes as f64 / (1u64 << 30) as f64,
            MAX_DATASET_BYTES >> 30
        )));
    }
    Ok(())
}

/// The resampling filter for resizes: bicubic, antialiased when shrinking.
const FILTER: FilterType = FilterType::CatmullRom;

fn limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(MAX_IMAGE_SIDE);
    l.max_image_height = Some(MAX_IMAGE_SIDE);
    l.max_alloc = Some(MAX_IMAGE_ALLOC);
    l
}

fn reader<'a>(path: &Path, bytes: &'a [u8]) -> Result<image::ImageReader<std::io::Cursor<&'a [u8]>>> {
    let mut r = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    match r.format() {
        Some(image::ImageFormat::Png) | Some(image::ImageFormat::Jpeg) => {}
        _ => return Err(Error::file(path, "not a PNG or JPEG image (unrecognised content)")),
    }
    r.limits(limits());
    Ok(r)
}

/// Reads a file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Width and height of an encoded image, without decoding its pixels.
pub fn dimensions(path: &Path) -> Result<(u32, u32)> {
    let bytes = read_file(path)?;
    reader(path, &bytes)?.into_dimensions().map_err(|e| Error::file(path, format!("cannot decode image: {e}")))
}

/// Decodes an encoded PNG/JPEG, within the decoding limits.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<DynamicImage> {
    let img = reader(path, bytes)?.decode().map_err(|e| Error::file(path, format!("cannot decode image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::file(path, "image has no pixels"));
    }
    Ok(img)
}

/// Center-crops to the largest square, resizes to `size` and writes the
/// pixels CHW with `channels` (1: luma, 3: RGB, alpha dropped) into `out`.
pub fn square_into(img: &DynamicImage, size: u32, channels: usize, out: &mut [u8]) {
    let (w, h) = (img.width(), img.height());
    let s = w.min(h);
    let sq = if w == h { img.clone() } else { img.crop_imm((w - s) / 2, (h - s) / 2, s, s) };
    let sq = if s == size { sq } else { sq.resize_exact(size, size, FILTER) };
    let plane = (size * size) as usize;
    if channels == 1 {
        out[..plane].copy_from_slice(sq.to_luma8().as_raw());
    } else {
        let rgb = sq.to_rgb8();
        for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
            out[i] = px[0];
            out[plane + i] = px[1];
            out[2 * plane + i] = px[2];
        }
    }
}

/// Resizes many square CHW u8 images (`c` = 1 or 3, side `from`) to side `to`.
pub fn resize_all(src: &[u8], c: usize, from: usize, to: usize) -> Vec<u8> {
    if from == to {
        return src.to_vec();
    }
    let (pin, pout) = (c * from * from, c * to * to);
    let n = src.len() / pin;
    let mut dst = vec![0u8; n * pout];
    dst.par_chunks_mut(pout).zip(src.par_chunks(pin)).for_each(|(out, img)| {
        let dynimg = if c == 1 {
            DynamicImage::ImageLuma8(GrayImage::from_raw(from as u32, from as u32, img.to_vec()).expect("sized buffer"))
        } else {
            let plane = from * from;
            let hwc: Vec<u8> = (0..plane).flat_map(|i| [img[i], img[plane + i], img[2 * plane + i]]).collect();
            DynamicImage::ImageRgb8(RgbImage::from_raw(from as u32, from as u32, hwc).expect("sized buffer"))
        };
        square_into(&dynimg, to as u32, c, out);
    });
    dst
}

/// [`resize_all`], passing the buffer through when nothing changes.
pub fn resize_all_owned(src: Vec<u8>, c: usize, from: usize, to: usize) -> Vec<u8> {
    if from == to {
        src
    } else {
        resize_all(&src, c, from, to)
    }
}

/// Converts CHW u8 images between 1 and 3 channels: gray is repeated, RGB
/// becomes luma (ITU-R 601 weights, rounded).
pub fn convert_channels(src: Vec<u8>, from: usize, to: usize, plane: usize) -> Vec<u8> {
    if from == to {
        return src;
    }
    let (pin, pout) = (from * plane, to * plane);
    let n = src.len() / pin;
    let mut dst = vec![0u8; n * pout];
    dst.par_chunks_mut(pout).zip(src.par_chunks(pin)).for_each(|(out, img)| {
        if from == 1 {
            for k in 0..3 {
                out[k * plane..(k + 1) * plane].copy_from_slice(img);
            }
        } else {
            for i in 0..plane {
                let v = 299 * img[i] as u32 + 587 * img[plane + i] as u32 + 114 * img[2 * plane + i] as u32;
                out[i] = ((v + 500) / 1000) as u8;
            }
        }
    });
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_size_limits() {
        assert!(check_decoded_size(70_000, 1, 28).is_ok());
        assert!(check_decoded_size(10_697, 3, 256).is_ok());
        let e = check_decoded_size(70_000, 1, 1024).unwrap_err().to_string();
        assert!(e.contains("68.4 GiB") && e.contains("smaller --size"), "{e}");
        let e = check_decoded_size(1, 1, (1 << 32) + 16).unwrap_err().to_string();
        assert!(e.contains("over the 16384 limit"), "{e}");
    }

    #[test]
    fn center_crop_keeps_the_middle_and_resize_averages() {
        // 4x2 image: columns 0 and 3 black, 1 and 2 white -> the 2x2 crop is white.
        let img = GrayImage::from_fn(4, 2, |x, _| image::Luma([if x == 1 || x == 2 { 255 } else { 0 }]));
        let mut out = [0u8; 4];
        square_into(&DynamicImage::ImageLuma8(img), 2, 1, &mut out);
        assert_eq!(out, [255; 4]);
        // A 4x4 half-black, half-white image shrunk to 2x2 keeps the halves.
        let img = GrayImage::from_fn(4, 4, |x, _| image::Luma([if x < 2 { 0 } else { 200 }]));
        let mut out = [0u8; 4];
        square_into(&DynamicImage::ImageLuma8(img), 2, 1, &mut out);
        // Bicubic antialiasing bleeds a little across the edge.
        assert!(out[0] < 30 && out[2] < 30 && out[1] > 170 && out[3] > 170, "{out:?}");
        assert_eq!(out[0], out[2]);
    }

    #[test]
    fn channel_conversion_repeats_gray_and_weights_rgb() {
        let gray = vec![10u8, 20];
        assert_eq!(convert_channels(gray, 1, 3, 2), vec![10, 20, 10, 20, 10, 20]);
        // One pixel, pure red 200: 0.299 * 200 = 59.8 -> 60.
        assert_eq!(convert_channels(vec![200, 0, 0], 3, 1, 1), vec![60]);
    }

    #[test]
    fn resize_all_keeps_constant_images_constant() {
        let src = vec![77u8; 2 * 3 * 5 * 5];
        let out = resize_all(&src, 3, 5, 3);
        assert_eq!(out.len(), 2 * 3 * 3 * 3);
        assert!(out.iter().all(|&v| v == 77), "{out:?}");
    }
}
