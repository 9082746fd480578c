//! Labelled CSV files (a header, one integer label column, numeric feature columns) and the
//! embedded 8x8 digits.

use std::path::Path;

use burn::config::Config;
use pml_core::PmlError;

use super::io::{file_error, gunzip_if_needed, read_maybe_gz};
use super::vector::VectorDataset;

/// The UCI optical-recognition handwritten digits as scikit-learn ships them (1,797 images, 8x8,
/// values 0..=16, 10 classes; E. Alpaydin, 1998), compiled in from the repository's
/// `data/digits.csv.gz` (header `label,px0..px63`).
const DIGITS_CSV_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/digits.csv.gz"
));

/// The 8x8 digits (UCI optical recognition of handwritten digits, E. Alpaydin 1998, as
/// distributed with scikit-learn), embedded in the binary: images `[1797, 64]` with values / 16
/// in `[0, 1]`, labels `0..=9`.
///
/// ```
/// let digits = pml_train::datasets::digits();
/// assert_eq!((digits.len(), digits.dim()), (1797, 64));
/// ```
///
/// # Panics
/// Never for the shipped file (a test reads it).
pub fn digits() -> VectorDataset {
    CsvDatasetConfig::new()
        .with_scale(1.0 / 16.0)
        .parse(DIGITS_CSV_GZ.to_vec(), "embedded digits.csv.gz")
        .unwrap_or_else(|e| panic!("the embedded digits CSV is corrupt: {e}"))
}

/// How to read a labelled CSV file into a [`VectorDataset`].
///
/// The file (gzip-compressed or plain) starts with a header line naming the columns; each further
/// non-empty line is one item with as many comma-separated fields as the header. The
/// `label_column` holds an integer label; every other column, in file order, is a feature,
/// multiplied by `scale`.
#[derive(Config, Debug)]
pub struct CsvDatasetConfig {
    /// The name of the label column in the header.
    #[config(default = "String::from(\"label\")")]
    pub label_column: String,
    /// Factor applied to every feature value (for example `1 / 255` for 8-bit pixels).
    #[config(default = 1.0)]
    pub scale: f32,
}

impl CsvDatasetConfig {
    /// Reads the CSV file at `path`.
    ///
    /// # Errors
    /// [`PmlError::File`] naming the file: unreadable, corrupt gzip, empty, no `label_column` in
    /// the header, a row whose field count differs from the header's (with its line number), a
    /// feature that is not a finite `f32` (NaN, infinite, out of range) or a label that is not
    /// an integer (with line and column).
    pub fn load(&self, path: impl AsRef<Path>) -> Result<VectorDataset, PmlError> {
        let path = path.as_ref();
        self.parse(read_maybe_gz(path)?, &path.display().to_string())
    }

    /// Reads CSV bytes already in memory (gzip or plain); `name` names them in errors.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(&self, bytes: Vec<u8>, name: &str) -> Result<VectorDataset, PmlError> {
        let bytes = gunzip_if_needed(bytes, name)?;
        let text =
            std::str::from_utf8(&bytes).map_err(|e| file_error(name, format!("not UTF-8: {e}")))?;
        let mut lines = text.lines().enumerate();
        let header: Vec<&str> = lines
            .next()
            .map(|(_, line)| line.split(',').map(str::trim).collect())
            .filter(|h: &Vec<&str>| h != &[""])
            .ok_or_else(|| file_error(name, "empty file, expected a header line"))?;
        let label_at = header
            .iter()
            .position(|c| *c == self.label_column)
            .ok_or_else(|| {
                file_error(
                    name,
                    format!(
                        "no column `{}` in the header ({} columns: {}...)",
                        self.label_column,
                        header.len(),
                        header[..header.len().min(4)].join(",")
                    ),
                )
            })?;
        let dim = header.len() - 1;
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for (index, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let line_no = index + 1;
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != header.len() {
                return Err(file_error(
                    name,
                    format!(
                        "line {line_no}: {} fields, the header has {}",
                        fields.len(),
                        header.len()
                    ),
                ));
            }
            for (column, field) in fields.iter().enumerate() {
                if column == label_at {
                    labels.push(field.parse::<i64>().map_err(|_| {
                        file_error(
                            name,
                            format!(
                                "line {line_no}: label `{field}` in column `{}` is not an integer",
                                header[column]
                            ),
                        )
                    })?);
                } else {
                    // NaN, infinities and values past f32 would reach a loss as NaN
                    // embeddings: refused here, where the line is known.
                    let value = field
                        .parse::<f32>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| {
                            file_error(
                                name,
                                format!(
                                    "line {line_no}: `{field}` in column `{}` is not a finite number",
                                    header[column]
                                ),
                            )
                        })?;
                    features.push(value * self.scale);
                }
            }
        }
        Ok(VectorDataset::new(features, labels, dim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_features_and_labels_with_a_chosen_label_column() {
        let csv = "a,class,b\n1,3,2\n\n4, 5 ,8\n";
        let ds = CsvDatasetConfig::new()
            .with_label_column("class".into())
            .with_scale(0.5)
            .parse(csv.as_bytes().to_vec(), "t.csv")
            .unwrap();
        assert_eq!(ds.dim(), 2);
        assert_eq!(ds.labels(), &[3, 5]);
        assert_eq!(ds.features(), &[0.5, 1.0, 2.0, 4.0]);
    }

    #[test]
    fn malformed_files_name_the_file_line_and_problem() {
        let err = |csv: &str| {
            CsvDatasetConfig::new()
                .parse(csv.as_bytes().to_vec(), "d.csv")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("label,px0,px1\n1,2,3\n4,5\n"),
            "d.csv: line 3: 2 fields, the header has 3"
        );
        assert_eq!(
            err("label,px0\n1,x\n"),
            "d.csv: line 2: `x` in column `px0` is not a finite number"
        );
        // Found by the bad-input matrix: these were read as NaN or infinite features.
        for bad in ["NaN", "inf", "-inf", "1e39"] {
            assert_eq!(
                err(&format!("label,px0\n1,{bad}\n")),
                format!("d.csv: line 2: `{bad}` in column `px0` is not a finite number")
            );
        }
        assert_eq!(
            err("label,px0\n1.5,2\n"),
            "d.csv: line 2: label `1.5` in column `label` is not an integer"
        );
        assert_eq!(
            err("y,px0\n1,2\n"),
            "d.csv: no column `label` in the header (2 columns: y,px0...)"
        );
        assert_eq!(err(""), "d.csv: empty file, expected a header line");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.csv");
        let e = CsvDatasetConfig::new()
            .load(&missing)
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.csv: cannot read"), "{e}");
    }

    #[test]
    fn embedded_digits() {
        let d = digits();
        assert_eq!((d.len(), d.dim()), (1797, 64));
        assert!(d.features().iter().all(|v| (0.0..=1.0).contains(v)));
        let mut counts = [0usize; 10];
        for &l in d.labels() {
            counts[l as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 1797);
        assert!(counts.iter().all(|&c| c >= 170));
    }
}
