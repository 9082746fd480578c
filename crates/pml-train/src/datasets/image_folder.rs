//! Datasets of image files with labels (the CUB-200-2011, Cars196 and Stanford Online Products
//! layouts build them), resolved lazily, and the batcher that decodes and resizes them.

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use image::imageops::FilterType;
use pml_core::{PmlError, tensor::int_tensor};

use super::io::file_error;

/// Which part of a dataset to read, with PML's split names (`"train"`, `"test"`,
/// `"train+test"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training part.
    Train,
    /// The test part.
    Test,
    /// Both (PML's `"train+test"`).
    TrainTest,
}

/// One image of an [`ImageFolderDataset`]: its file (decoded only when batched) and its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageItem {
    /// The image file.
    pub path: PathBuf,
    /// The class label, as the dataset's annotation files give it.
    pub label: i64,
}

/// Labelled image files, read lazily: the items hold paths, and [`ImageBatcher`] decodes them.
///
/// Built by [`cub_200_2011`](super::cub_200_2011), [`cars196`](super::cars196),
/// [`stanford_online_products`](super::stanford_online_products), or from any list of items with
/// [`new`](Self::new). Implements Burn's [`Dataset<ImageItem>`](Dataset).
#[derive(Clone, Debug)]
pub struct ImageFolderDataset {
    items: Vec<ImageItem>,
    super_labels: Option<Vec<i64>>,
}

impl ImageFolderDataset {
    /// A dataset of `items`, checking that every file exists.
    ///
    /// # Errors
    /// [`PmlError::File`] naming the first missing image.
    pub fn new(items: Vec<ImageItem>) -> Result<Self, PmlError> {
        for item in &items {
            if !item.path.is_file() {
                return Err(file_error(&item.path, "missing image"));
            }
        }
        Ok(Self {
            items,
            super_labels: None,
        })
    }

    /// A dataset of items whose files were checked while their list was read.
    pub(crate) fn from_checked(items: Vec<ImageItem>, super_labels: Option<Vec<i64>>) -> Self {
        Self {
            items,
            super_labels,
        }
    }

    /// The same items with a coarser label per item (Stanford Online Products' super classes),
    /// for [`HierarchicalSampler`](crate::samplers::HierarchicalSampler).
    ///
    /// # Panics
    /// If `super_labels` is not as long as the dataset.
    pub fn with_super_labels(mut self, super_labels: Vec<i64>) -> Self {
        assert_eq!(
            super_labels.len(),
            self.items.len(),
            "ImageFolderDataset::with_super_labels: {} super labels for {} items",
            super_labels.len(),
            self.items.len()
        );
        self.super_labels = Some(super_labels);
        self
    }

    /// The items, in order.
    pub fn items(&self) -> &[ImageItem] {
        &self.items
    }

    /// The labels, `[n]` (what the samplers take).
    pub fn labels(&self) -> Vec<i64> {
        self.items.iter().map(|item| item.label).collect()
    }

    /// The super labels, `[n]`, when the layout has them.
    pub fn super_labels(&self) -> Option<&[i64]> {
        self.super_labels.as_deref()
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Dataset<ImageItem> for ImageFolderDataset {
    fn get(&self, index: usize) -> Option<ImageItem> {
        self.items.get(index).cloned()
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// A batch of decoded images, on the device.
///
/// # Shapes
/// `images`: `[batch, 3, height, width]` (RGB, channels first); `labels`: `[batch]`.
#[derive(Clone, Debug)]
pub struct ImageBatch<B: Backend> {
    /// The images.
    pub images: Tensor<B, 4>,
    /// Their labels.
    pub labels: Tensor<B, 1, Int>,
}

/// Configuration of [`ImageBatcher`]: the size images are resized to, and the per-channel
/// normalization `(pixel / 255 - mean) / std` (the defaults leave pixels in `[0, 1]`; ImageNet
/// backbones want `mean = [0.485, 0.456, 0.406]`, `std = [0.229, 0.224, 0.225]`).
#[derive(Config, Debug)]
pub struct ImageBatcherConfig {
    /// Output height in pixels.
    #[config(default = 224)]
    pub height: usize,
    /// Output width in pixels.
    #[config(default = 224)]
    pub width: usize,
    /// Per-channel mean (RGB) subtracted after scaling to `[0, 1]`.
    #[config(default = "[0.0, 0.0, 0.0]")]
    pub mean: [f32; 3],
    /// Per-channel standard deviation (RGB) divided by after the mean.
    #[config(default = "[1.0, 1.0, 1.0]")]
    pub std: [f32; 3],
}

impl ImageBatcherConfig {
    /// Builds the batcher.
    ///
    /// # Panics
    /// If `height` or `width` is 0, or a `std` entry is not positive.
    pub fn init(&self) -> ImageBatcher {
        assert!(
            self.height > 0 && self.width > 0,
            "ImageBatcherConfig: height and width must be positive, got {} x {}",
            self.height,
            self.width
        );
        assert!(
            self.std.iter().all(|s| *s > 0.0),
            "ImageBatcherConfig: std must be positive, got {:?}",
            self.std
        );
        ImageBatcher {
            height: self.height,
            width: self.width,
            mean: self.mean,
            std: self.std,
        }
    }
}

/// Decodes [`ImageItem`]s (PNG or JPEG, any color type, converted to RGB), resizes them
/// (bilinear) and stacks them into an [`ImageBatch`] (Burn's [`Batcher`]); images are decoded on
/// all cores.
///
/// An image that cannot be decoded is left out of its batch with a `log` warning naming the file
/// and the reason, so that one bad file never stops a training run; [`load`](Self::load) returns
/// the error instead.
#[derive(Clone, Debug)]
pub struct ImageBatcher {
    height: usize,
    width: usize,
    mean: [f32; 3],
    std: [f32; 3],
}

impl ImageBatcher {
    /// The image at `path`, decoded, resized and normalized: `[3 * height * width]` values,
    /// channels first.
    ///
    /// # Errors
    /// [`PmlError::File`] naming the file when it cannot be opened or decoded.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>, PmlError> {
        let image = image::open(path)
            .map_err(|e| file_error(path, format!("cannot decode image: {e}")))?
            .to_rgb8();
        let resized = image::imageops::resize(
            &image,
            self.width as u32,
            self.height as u32,
            FilterType::Triangle,
        );
        let plane = self.height * self.width;
        let mut out = vec![0.0; 3 * plane];
        for (i, pixel) in resized.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (f32::from(pixel[c]) / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Ok(out)
    }
}

impl<B: Backend> Batcher<B, ImageItem, ImageBatch<B>> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &B::Device) -> ImageBatch<B> {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(items.len())
            .max(1);
        let chunk = items.len().div_ceil(threads).max(1);
        let decoded: Vec<Option<Vec<f32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|item| {
                                self.load(&item.path)
                                    .inspect_err(|e| log::warn!("ImageBatcher: skipping {e}"))
                                    .ok()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut pixels = Vec::with_capacity(items.len() * 3 * self.height * self.width);
        let mut labels = Vec::with_capacity(items.len());
        for (item, values) in items.iter().zip(decoded) {
            if let Some(values) = values {
                pixels.extend(values);
                labels.push(item.label);
            }
        }
        ImageBatch {
            images: Tensor::from_data(
                TensorData::new(pixels, [labels.len(), 3, self.height, self.width]),
                device,
            ),
            labels: int_tensor(&labels, device),
        }
    }
}

/// The non-empty lines of a list file with their 1-based line numbers.
pub(crate) fn read_lines(path: &Path) -> Result<Vec<(usize, String)>, PmlError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (i + 1, line.trim().to_string()))
        .collect())
}

/// Parses `field` as an integer, or a [`PmlError::File`] naming `path`, the line and `what`.
pub(crate) fn parse_int(
    field: &str,
    path: &Path,
    line: usize,
    what: &str,
) -> Result<i64, PmlError> {
    field.trim().parse().map_err(|_| {
        file_error(
            path,
            format!("line {line}: {what} `{field}` is not an integer"),
        )
    })
}

/// An error for a line that does not have the expected fields.
pub(crate) fn bad_line(path: &Path, line: usize, expected: &str, found: &str) -> PmlError {
    file_error(
        path,
        format!("line {line}: expected `{expected}`, found `{found}`"),
    )
}

/// `path` must be an existing file, else an error naming it and the list line that names it.
pub(crate) fn existing_image(path: PathBuf, list: &Path, line: usize) -> Result<PathBuf, PmlError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(file_error(
            &path,
            format!("missing image (listed in {} line {line})", list.display()),
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn_ndarray::NdArray;
    use pml_core::tensor::{float_vec, int_vec};

    /// Writes a `w x h` PNG of one color at `path`, creating its folders.
    pub(crate) fn write_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
            .save(path)
            .unwrap();
    }

    #[test]
    fn batcher_decodes_resizes_normalizes_and_skips_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let (red, blue, bad) = (
            dir.path().join("red.png"),
            dir.path().join("b/blue.png"),
            dir.path().join("bad.png"),
        );
        write_png(&red, 5, 3, [255, 0, 0]);
        write_png(&blue, 2, 7, [0, 0, 51]);
        std::fs::write(&bad, b"not a png").unwrap();
        let items = vec![
            ImageItem {
                path: red,
                label: 4,
            },
            ImageItem {
                path: bad.clone(),
                label: 5,
            },
            ImageItem {
                path: blue,
                label: 6,
            },
        ];
        let ds = ImageFolderDataset::new(items.clone()).unwrap();
        assert_eq!((ds.len(), ds.labels()), (3, vec![4, 5, 6]));

        let batcher = ImageBatcherConfig::new()
            .with_height(2)
            .with_width(2)
            .with_mean([0.5, 0.0, 0.0])
            .with_std([0.5, 1.0, 1.0])
            .init();
        let batch: ImageBatch<NdArray> = batcher.batch(items, &Default::default());
        assert_eq!(batch.images.dims(), [2, 3, 2, 2]);
        assert_eq!(int_vec(batch.labels), vec![4, 6]);
        let v = float_vec(batch.images);
        let expected: Vec<f64> =
            [[1.0; 4], [0.0; 4], [0.0; 4], [-1.0; 4], [0.0; 4], [0.2; 4]].concat();
        for (a, b) in v.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }

        let e = batcher.load(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.png: cannot decode image"), "{e}");
    }

    #[test]
    fn missing_images_are_refused_up_front() {
        let e = ImageFolderDataset::new(vec![ImageItem {
            path: "/nonexistent/x.png".into(),
            label: 0,
        }])
        .unwrap_err()
        .to_string();
        assert_eq!(e, "/nonexistent/x.png: missing image");
    }
}
