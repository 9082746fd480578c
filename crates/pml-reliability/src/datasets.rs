//! Dataset rows: the IDX (MNIST) and CSV readers on truncated, corrupt, mis-ranked and
//! overflowing bytes, the image-folder layouts on missing or empty folders, and
//! `VectorDataset::new` with mismatched sizes. Every reader must end in a dataset whose sizes
//! agree, or a `PmlError::File`.

use std::io::Write;

use flate2::{Compression, write::GzEncoder};
use pml_core::PmlError;
use pml_train::datasets::{
    CsvDatasetConfig, Split, VectorDataset, cars196, cub_200_2011, mnist_from_bytes,
    stanford_online_products,
};

use crate::{Expect, Report};

/// An IDX file: magic, big-endian sizes, payload.
pub(crate) fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// A dataset's sizes must agree: `len * dim` features, all finite.
fn check_dataset(d: &VectorDataset) -> Result<(), String> {
    if d.features().len() != d.len() * d.dim() {
        return Err(format!(
            "{} features for {} x {}",
            d.features().len(),
            d.len(),
            d.dim()
        ));
    }
    match d.features().iter().find(|v| !v.is_finite()) {
        Some(v) => Err(format!("a non-finite feature {v} was read")),
        None => Ok(()),
    }
}

fn idx_cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let pixels = vec![7u8; 2 * 784];
    let images = idx(2051, &[2, 28, 28], &pixels);
    let labels = idx(2049, &[2], &[3, 9]);
    let mut truncated_gz = gz(&images);
    truncated_gz.truncate(truncated_gz.len() / 2);
    vec![
        ("well-formed files", images.clone(), labels.clone()),
        ("gzip-compressed files", gz(&images), gz(&labels)),
        ("empty files", vec![], vec![]),
        ("a truncated header", images[..6].to_vec(), labels.clone()),
        (
            "a truncated payload",
            images[..images.len() - 1].to_vec(),
            labels.clone(),
        ),
        (
            "a longer payload",
            [images.clone(), vec![0]].concat(),
            labels.clone(),
        ),
        (
            "the wrong magic (labels as images)",
            labels.clone(),
            labels.clone(),
        ),
        ("images of rank 1", idx(2049, &[2], &[1, 2]), labels.clone()),
        (
            "images 27 x 29",
            idx(2051, &[2, 27, 29], &vec![0; 2 * 27 * 29]),
            labels.clone(),
        ),
        (
            "more labels than images",
            images.clone(),
            idx(2049, &[3], &[1, 2, 3]),
        ),
        (
            "sizes whose product overflows",
            idx(2051, &[u32::MAX, u32::MAX, u32::MAX], &[]),
            labels.clone(),
        ),
        (
            "sizes past the file",
            idx(2051, &[1 << 30, 28, 28], &[0; 16]),
            labels.clone(),
        ),
        (
            "zero images",
            idx(2051, &[0, 28, 28], &[]),
            idx(2049, &[0], &[]),
        ),
        ("a truncated gzip stream", truncated_gz, labels.clone()),
        (
            "a gzip magic and garbage",
            vec![0x1f, 0x8b, 1, 2, 3],
            labels,
        ),
    ]
}

fn csv_cases() -> Vec<(&'static str, Vec<u8>)> {
    let text = |s: &str| s.as_bytes().to_vec();
    vec![
        ("a well-formed file", text("label,a,b\n0,1,2\n1,3,4\n")),
        ("gzip-compressed", gz(b"label,a,b\n0,1,2\n")),
        ("an empty file", vec![]),
        ("only a header", text("label,a,b\n")),
        ("no label column", text("x,a,b\n0,1,2\n")),
        ("only the label column", text("label\n3\n4\n")),
        ("a short row", text("label,a,b\n0,1\n")),
        ("a long row", text("label,a,b\n0,1,2,3\n")),
        ("a feature that is not a number", text("label,a,b\n0,x,2\n")),
        (
            "a label that is not an integer",
            text("label,a,b\n0.5,1,2\n"),
        ),
        ("a NaN feature", text("label,a,b\n0,NaN,2\n")),
        ("an infinite feature", text("label,a,b\n0,inf,2\n")),
        (
            "a feature that overflows f32",
            text("label,a,b\n0,1e39,2\n"),
        ),
        (
            "a label past i64",
            text("label,a,b\n99999999999999999999,1,2\n"),
        ),
        ("negative labels", text("label,a,b\n-4,1,2\n")),
        ("not UTF-8", vec![b'l', 0xff, 0xfe, b'\n']),
        ("CRLF line ends", text("label,a\r\n0,1\r\n")),
        ("blank lines", text("label,a\n\n0,1\n\n")),
        (
            "a truncated gzip stream",
            gz(b"label,a,b\n0,1,2\n")[..12].to_vec(),
        ),
    ]
}

pub(crate) fn run(report: &mut Report) {
    for (name, images, labels) in idx_cases() {
        report.check("mnist_from_bytes", name, Expect::Data, || {
            let d = mnist_from_bytes(images, "images", labels, "labels")?;
            Ok(check_dataset(&d))
        });
    }
    for (name, bytes) in csv_cases() {
        report.check("CsvDatasetConfig::parse", name, Expect::Data, || {
            let d = CsvDatasetConfig::new().parse(bytes, "file.csv")?;
            Ok(check_dataset(&d))
        });
    }
    report.check(
        "CsvDatasetConfig::load",
        "a missing file",
        Expect::Data,
        || {
            CsvDatasetConfig::new()
                .load("/nonexistent/pml-reliability.csv")
                .map(|_| Ok(()))
        },
    );
    let empty = std::env::temp_dir().join(format!("pml-reliability-empty-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&empty);
    type Layout =
        fn(&std::path::Path, Split) -> Result<pml_train::datasets::ImageFolderDataset, PmlError>;
    let layouts: [(&str, Layout); 3] = [
        ("cub_200_2011", |p, s| cub_200_2011(p, s)),
        ("cars196", |p, s| cars196(p, s)),
        ("stanford_online_products", |p, s| {
            stanford_online_products(p, s)
        }),
    ];
    for (name, layout) in layouts {
        for (what, dir) in [
            (
                "a missing folder",
                std::path::PathBuf::from("/nonexistent/pml"),
            ),
            ("an empty folder", empty.clone()),
        ] {
            report.check(name, what, Expect::Data, || {
                layout(&dir, Split::Train).map(|_| Ok(()))
            });
        }
    }
    report.check(
        "VectorDataset::new",
        "features of the wrong length",
        Expect::Contract(&["features"]),
        || {
            let d = VectorDataset::new(vec![0.0; 5], vec![0, 1], 3);
            Ok(check_dataset(&d))
        },
    );
}
