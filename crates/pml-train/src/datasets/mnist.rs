//! MNIST in its IDX format (LeCun, Cortes, Burges), gzip-compressed or plain, and the embedded
//! MNIST test set.

use std::path::Path;

use pml_core::PmlError;

use super::io::{file_error, gunzip_if_needed, read_maybe_gz};
use super::vector::VectorDataset;

/// Pixels per MNIST image (28 x 28).
pub const MNIST_PIXELS: usize = 28 * 28;

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

/// The MNIST test set's files, compiled into the crate from the repository's
/// `data/mnist-test/` (`t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`, 1.6 MB), so the
/// examples and tests run from any directory and with no download.
const TEST_IMAGES_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/mnist-test/t10k-images-idx3-ubyte.gz"
));
const TEST_LABELS_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/mnist-test/t10k-labels-idx1-ubyte.gz"
));

/// The MNIST test set (10,000 images; MNIST by Y. LeCun, C. Cortes and C. J. C. Burges, CC BY-SA
/// 3.0), embedded in the binary: images `[10000, 784]` with pixels / 255 in `[0, 1]`, labels
/// `0..=9`, in the file's order.
///
/// The quick start trains on items `0..7000` and retrieves among `7000..10000`:
/// `let (train, test) = (mnist.subset(0..7000), mnist.subset(7000..10000));`.
///
/// ```
/// let mnist = pml_train::datasets::mnist_test_set();
/// assert_eq!((mnist.len(), mnist.dim()), (10_000, 784));
/// ```
///
/// # Panics
/// Never for the shipped files (a test reads them); only if the crate was built with corrupt
/// copies of them.
pub fn mnist_test_set() -> VectorDataset {
    mnist_from_bytes(
        TEST_IMAGES_GZ.to_vec(),
        "embedded t10k-images-idx3-ubyte.gz",
        TEST_LABELS_GZ.to_vec(),
        "embedded t10k-labels-idx1-ubyte.gz",
    )
    .unwrap_or_else(|e| panic!("the embedded MNIST test set is corrupt: {e}"))
}

/// Reads an MNIST image file (IDX magic 2051, `[n, 28, 28]` bytes) and its label file (magic
/// 2049, `[n]` bytes), each gzip-compressed or plain (told apart by their first bytes).
///
/// Returns images `[n, 784]` with pixels / 255 in `[0, 1]`, and the labels.
///
/// # Errors
/// [`PmlError::File`] naming the file: unreadable, corrupt gzip, wrong magic number, truncated
/// (or too long) for the sizes in its header, images not 28 x 28, or image and label counts that
/// differ.
pub fn load_mnist(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
) -> Result<VectorDataset, PmlError> {
    let (images, labels) = (images.as_ref(), labels.as_ref());
    let image_bytes = read_maybe_gz(images)?;
    let label_bytes = read_maybe_gz(labels)?;
    mnist_from_bytes(
        image_bytes,
        &images.display().to_string(),
        label_bytes,
        &labels.display().to_string(),
    )
}

/// [`load_mnist`] on bytes already in memory (gzip or plain); the names are used in errors.
///
/// # Errors
/// As [`load_mnist`].
pub fn mnist_from_bytes(
    images: Vec<u8>,
    images_name: &str,
    labels: Vec<u8>,
    labels_name: &str,
) -> Result<VectorDataset, PmlError> {
    let images = gunzip_if_needed(images, images_name)?;
    let labels = gunzip_if_needed(labels, labels_name)?;
    let (image_dims, pixels) = parse_idx(&images, images_name, IMAGES_MAGIC)?;
    let (label_dims, label_bytes) = parse_idx(&labels, labels_name, LABELS_MAGIC)?;
    if image_dims[1..] != [28, 28] {
        return Err(file_error(
            images_name,
            format!("images are {:?}, expected 28 x 28", &image_dims[1..]),
        ));
    }
    if image_dims[0] != label_dims[0] {
        return Err(file_error(
            labels_name,
            format!(
                "{} labels for {} images in {images_name}",
                label_dims[0], image_dims[0]
            ),
        ));
    }
    let features = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let labels = label_bytes.iter().map(|&l| i64::from(l)).collect();
    Ok(VectorDataset::new(features, labels, MNIST_PIXELS))
}

/// The dimensions and the payload of an IDX file of unsigned bytes with magic `magic`
/// (`0x00 0x00 0x08 ndim`, then `ndim` big-endian u32 sizes).
fn parse_idx<'a>(
    bytes: &'a [u8],
    name: &str,
    magic: u32,
) -> Result<(Vec<usize>, &'a [u8]), PmlError> {
    let word = |i: usize| -> Option<u32> {
        bytes
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found = word(0).ok_or_else(|| {
        file_error(
            name,
            format!("truncated IDX file: {} bytes, no header", bytes.len()),
        )
    })?;
    if found != magic {
        return Err(file_error(
            name,
            format!("wrong magic number {found}, expected {magic}"),
        ));
    }
    let ndim = (magic & 0xff) as usize;
    let dims = (1..=ndim)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            file_error(
                name,
                format!(
                    "truncated IDX header: {} bytes for {ndim} sizes",
                    bytes.len()
                ),
            )
        })?;
    let header = 4 * (ndim + 1);
    let payload = &bytes[header..];
    // Sizes from the header are untrusted: their product may overflow.
    let Some(expected) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return Err(file_error(
            name,
            format!(
                "IDX header {dims:?} describes more than usize::MAX bytes, found {}",
                payload.len()
            ),
        ));
    };
    if payload.len() != expected {
        let what = if payload.len() < expected {
            "truncated IDX file"
        } else {
            "IDX file longer than its header says"
        };
        return Err(file_error(
            name,
            format!(
                "{what}: header {dims:?} needs {expected} data bytes, found {}",
                payload.len()
            ),
        ));
    }
    Ok((dims, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn two_images() -> (Vec<u8>, Vec<u8>) {
        let mut pixels = vec![0u8; 2 * MNIST_PIXELS];
        pixels[0] = 255;
        pixels[MNIST_PIXELS + 1] = 51;
        (idx(2051, &[2, 28, 28], &pixels), idx(2049, &[2], &[3, 9]))
    }

    #[test]
    fn reads_plain_and_gzip_files() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = two_images();
        std::fs::write(dir.path().join("i"), &images).unwrap();
        std::fs::write(dir.path().join("l.gz"), gz(&labels)).unwrap();
        let ds = load_mnist(dir.path().join("i"), dir.path().join("l.gz")).unwrap();
        assert_eq!((ds.len(), ds.dim()), (2, 784));
        assert_eq!(ds.labels(), &[3, 9]);
        assert_eq!(ds.row(0)[0], 1.0);
        assert_eq!(ds.row(1)[1], 0.2);
        assert_eq!(ds.row(1)[0], 0.0);
    }

    #[test]
    fn malformed_files_name_the_file_and_the_problem() {
        let (images, labels) = two_images();
        let err = |i: Vec<u8>, l: Vec<u8>| mnist_from_bytes(i, "imgs", l, "lbls").unwrap_err();

        let e = err(images[..images.len() - 5].to_vec(), labels.clone()).to_string();
        assert!(e.starts_with("imgs: truncated IDX file"), "{e}");
        assert!(e.contains("1568 data bytes, found 1563"), "{e}");

        let e = err(images.clone(), idx(2051, &[2], &[3, 9])).to_string();
        assert_eq!(e, "lbls: wrong magic number 2051, expected 2049");

        let e = err(images[..6].to_vec(), labels.clone()).to_string();
        assert!(e.starts_with("imgs: truncated IDX header"), "{e}");

        let e = err(vec![1, 2], labels.clone()).to_string();
        assert!(e.starts_with("imgs: truncated IDX file: 2 bytes"), "{e}");

        let e = err(images.clone(), idx(2049, &[3], &[3, 9, 1])).to_string();
        assert_eq!(e, "lbls: 3 labels for 2 images in imgs");

        let e = err(idx(2051, &[1, 2, 2], &[0; 4]), labels.clone()).to_string();
        assert_eq!(e, "imgs: images are [2, 2], expected 28 x 28");

        // Found by the bad-input matrix: the sizes' product overflowed (a panic in debug
        // builds, a wrapped size in release ones).
        let e = err(idx(2051, &[u32::MAX; 3], &[]), labels.clone()).to_string();
        assert!(e.contains("describes more than usize::MAX bytes"), "{e}");

        let mut bad_gz = gz(&labels);
        bad_gz.truncate(12);
        let e = err(images.clone(), bad_gz).to_string();
        assert!(e.starts_with("lbls: corrupt gzip data"), "{e}");

        let e = load_mnist("/nonexistent/images", "/nonexistent/labels")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/images: cannot read"), "{e}");
    }

    #[test]
    fn embedded_test_set_has_the_published_class_counts() {
        let mnist = mnist_test_set();
        assert_eq!((mnist.len(), mnist.dim()), (10_000, MNIST_PIXELS));
        let mut counts = [0usize; 10];
        for &l in mnist.labels() {
            counts[l as usize] += 1;
        }
        assert_eq!(
            counts,
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );
        assert!(mnist.features().iter().all(|p| (0.0..=1.0).contains(p)));
        assert_eq!(mnist.features().iter().cloned().fold(0.0, f32::max), 1.0);
    }
}
