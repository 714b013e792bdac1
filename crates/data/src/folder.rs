//! Image folders: `root/<class>/*.png|jpg`, class = folder name, sorted.
//! Files and other entries beside the class folders (an `index.csv`, a
//! `MANIFEST.md`) are ignored, and so are hidden entries.
use crate::cache::Fingerprint;
use crate::{pixels, Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// What a scan of an image folder found.
#[derive(Debug, Clone)]
pub struct FolderIndex {
    /// The folder.
    pub root: PathBuf,
    /// Class names (folder names), sorted.
    pub classes: Vec<String>,
    /// Every image with its label, class by class, files sorted by name.
    pub files: Vec<(PathBuf, i64)>,
    /// Names, sizes and modification times of everything listed.
    pub fingerprint: u64,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn hidden(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        if !hidden(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Lists the class folders and their images.
pub fn scan(root: &Path) -> Result<FolderIndex> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(Error::file(
            root,
            "is a file, not a folder of <class>/ image folders (or a known data set name: fashion-mnist, mnist, cifar10)",
        ));
    }
    let entries = list(root)?;
    let class_dirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    let mut fp = Fingerprint::new();
    let mut classes = Vec::new();
    let mut files = Vec::new();
    for dir in &class_dirs {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let images: Vec<PathBuf> = list(dir)?.into_iter().filter(|p| is_image(p) && !p.is_dir()).collect();
        if images.is_empty() {
            return Err(Error::file(dir, "class folder has no .png or .jpg images"));
        }
        fp.add_str(&name);
        for p in &images {
            fp.add_file(p);
            files.push((p.clone(), classes.len() as i64));
        }
        classes.push(name);
    }
    match classes.len() {
        0 if entries.iter().any(|p| is_image(p)) => {
            Err(Error::file(root, "holds images but no class folders; put each class's images in root/<class>/"))
        }
        0 => Err(Error::file(root, "empty folder: no <class>/ subfolders with .png or .jpg images")),
        1 => Err(Error::file(
            root,
            format!("only one class folder ('{}'); a labelled data set needs at least two", classes[0]),
        )),
        _ => Ok(FolderIndex { root: root.to_path_buf(), classes, files, fingerprint: fp.finish() }),
    }
}

/// Decodes every image of `index` in parallel into CHW u8 pixels with
/// `channels`, center-cropped and resized to `size` (default: the shorter
/// side of the first image, and then every image must have its dimensions).
/// Returns (side, pixels).
pub fn decode_all(index: &FolderIndex, size: Option<usize>, channels: usize) -> Result<(usize, Vec<u8>)> {
    let first = &index.files[0].0;
    let first_dims = pixels::dimensions(first)?;
    let side = match size {
        Some(s) => s,
        None => first_dims.0.min(first_dims.1) as usize,
    };
    pixels::check_decoded_size(index.files.len(), channels, side)?;
    let per = channels * side * side;
    let mut out = vec![0u8; index.files.len() * per];
    out.par_chunks_mut(per).zip(index.files.par_iter()).try_for_each(|(buf, (path, _))| {
        let bytes = pixels::read_file(path)?;
        let img = pixels::decode(path, &bytes)?;
        if size.is_none() && (img.width(), img.height()) != first_dims {
            return Err(Error::file(
                path,
                format!(
                    "mixed image sizes: this image is {}x{} but {} is {}x{}; give a size (--size) to resize every image",
                    img.width(),
                    img.height(),
                    first.display(),
                    first_dims.0,
                    first_dims.1
                ),
            ));
        }
        pixels::square_into(&img, side as u32, channels, buf);
        Ok(())
    })?;
    Ok((side, out))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes `root/<class>/<i>.png`, `per_class` RGB images of `size` each,
    /// class `c` with a bright channel `c % 3`.
    pub fn write_folder(root: &Path, classes: &[&str], per_class: usize, size: u32) {
        for (c, name) in classes.iter().enumerate() {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                let img = image::RgbImage::from_fn(size, size, |x, y| {
                    let v = ((x * 7 + y * 3 + i as u32 * 11) % 64) as u8;
                    let mut px = [v, v, v];
                    px[c % 3] = px[c % 3].saturating_add(150);
                    image::Rgb(px)
                });
                img.save(dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }

    #[test]
    fn scan_sorts_classes_and_ignores_loose_files() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), &["b", "a", "c"], 2, 8);
        std::fs::write(dir.path().join("index.csv"), "file,breed\n").unwrap();
        std::fs::write(dir.path().join("a/notes.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join(".hidden")).unwrap();
        let idx = scan(dir.path()).unwrap();
        assert_eq!(idx.classes, vec!["a", "b", "c"]);
        assert_eq!(idx.files.len(), 6);
        assert_eq!(idx.files[2].1, 1);
        assert!(idx.files[2].0.ends_with("b/0.png"));
    }

    #[test]
    fn gray_and_alpha_images_become_the_requested_channels() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("g")).unwrap();
        std::fs::create_dir_all(dir.path().join("r")).unwrap();
        image::GrayImage::from_pixel(4, 4, image::Luma([100])).save(dir.path().join("g/0.png")).unwrap();
        image::RgbaImage::from_pixel(4, 4, image::Rgba([200, 0, 0, 7])).save(dir.path().join("r/0.png")).unwrap();
        let idx = scan(dir.path()).unwrap();
        let (side, rgb) = decode_all(&idx, None, 3).unwrap();
        assert_eq!(side, 4);
        assert_eq!((rgb[0], rgb[16], rgb[32]), (100, 100, 100));
        assert_eq!((rgb[48], rgb[64], rgb[80]), (200, 0, 0));
        let (_, gray) = decode_all(&idx, Some(2), 1).unwrap();
        assert_eq!(gray.len(), 2 * 4);
        assert_eq!(gray[0], 100);
        assert!((gray[4] as i32 - 43).abs() <= 1, "red 200 as luma: {}", gray[4]);
    }

    #[test]
    fn bad_folders_name_the_path_and_the_fault() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let e = scan(&root.join("nope")).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("No such file"), "{e}");
        std::fs::create_dir(root.join("empty")).unwrap();
        let e = scan(&root.join("empty")).unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("empty folder"), "{e}");
        std::fs::create_dir(root.join("flat")).unwrap();
        image::RgbImage::new(4, 4).save(root.join("flat/x.png")).unwrap();
        let e = scan(&root.join("flat")).unwrap_err().to_string();
        assert!(e.contains("flat") && e.contains("holds images but no class folders"), "{e}");
        write_folder(&root.join("one"), &["only"], 2, 4);
        let e = scan(&root.join("one")).unwrap_err().to_string();
        assert!(e.contains("only one class folder ('only')"), "{e}");
        write_folder(&root.join("hollow"), &["a"], 2, 4);
        std::fs::create_dir_all(root.join("hollow/b")).unwrap();
        let e = scan(&root.join("hollow")).unwrap_err().to_string();
        assert!(e.contains("hollow/b") && e.contains("no .png or .jpg images"), "{e}");
        write_folder(&root.join("mixed"), &["a", "b"], 2, 4);
        image::RgbImage::new(5, 4).save(root.join("mixed/b/1.png")).unwrap();
        let idx = scan(&root.join("mixed")).unwrap();
        let e = decode_all(&idx, None, 3).unwrap_err().to_string();
        assert!(
            e.contains("b/1.png") && e.contains("mixed image sizes: this image is 5x4") && e.contains("4x4"),
            "{e}"
        );
        assert!(decode_all(&idx, Some(4), 3).is_ok(), "a size resizes mixed images");
        write_folder(&root.join("bad"), &["a", "b"], 2, 4);
        std::fs::write(root.join("bad/a/1.png"), b"\x89PNG\r\n\x1a\n garbage").unwrap();
        let e = decode_all(&scan(&root.join("bad")).unwrap(), None, 3).unwrap_err().to_string();
        assert!(e.contains("a/1.png") && e.contains("cannot decode image"), "{e}");
        std::fs::write(root.join("bad/a/1.png"), b"hello").unwrap();
        let e = decode_all(&scan(&root.join("bad")).unwrap(), None, 3).unwrap_err().to_string();
        assert!(e.contains("a/1.png") && e.contains("not a PNG or JPEG"), "{e}");
        std::os::unix::fs::symlink(root.join("gone.png"), root.join("bad/a/2.png")).unwrap();
        let e = decode_all(&scan(&root.join("bad")).unwrap(), None, 3).unwrap_err().to_string();
        assert!(e.contains("a/1.png") || e.contains("a/2.png"), "{e}");
        std::fs::write(root.join("bad/a/1.png"), std::fs::read(root.join("bad/b/0.png")).unwrap()).unwrap();
        let e = decode_all(&scan(&root.join("bad")).unwrap(), None, 3).unwrap_err().to_string();
        assert!(e.contains("a/2.png") && e.contains("No such file"), "an unreadable file: {e}");
        std::fs::remove_file(root.join("bad/a/2.png")).unwrap();
        let full = std::fs::read(root.join("bad/b/0.png")).unwrap();
        std::fs::write(root.join("bad/a/1.png"), &full[..full.len() / 2]).unwrap();
        let e = decode_all(&scan(&root.join("bad")).unwrap(), None, 3).unwrap_err().to_string();
        assert!(e.contains("a/1.png") && e.contains("cannot decode image"), "{e}");
    }

    #[test]
    fn oversized_images_are_refused_before_decoding() {
        // PNG headers declaring 100000x100000 pixels (a decompression bomb)
        // and 20000x1 (small in bytes, over our side limit only).
        let dir = tempfile::tempdir().unwrap();
        for (w, h) in [(100_000u32, 100_000u32), (pixels::MAX_IMAGE_SIDE + 1, 1)] {
            let mut png = Vec::new();
            image::GrayImage::new(1, 1).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
            // Patch width and height in the IHDR chunk and fix its CRC.
            png[16..20].copy_from_slice(&w.to_be_bytes());
            png[20..24].copy_from_slice(&h.to_be_bytes());
            let crc = crc32(&png[12..29]);
            png[29..33].copy_from_slice(&crc.to_be_bytes());
            let p = dir.path().join("bomb.png");
            std::fs::write(&p, &png).unwrap();
            let e = pixels::decode(&p, &png).unwrap_err().to_string();
            assert!(e.contains("bomb.png") && e.contains("cannot decode image"), "{w}x{h}: {e}");
        }
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
}
