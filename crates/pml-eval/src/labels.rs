//! Labels of evaluated embeddings, kept on the host.

use burn::tensor::{Int, Tensor, backend::Backend};
use pml_core::{PmlError, tensor::int_vec};

/// The labels of a set of embeddings: one row of `width` integers per embedding.
///
/// Width 1 is the usual class id. Wider rows hold label hierarchies (one column per level, as
/// PML's testers use them) or multi-label sets compared with a custom label comparison (see
/// [`AccuracyCalculator::with_label_comparison_fn`](crate::AccuracyCalculator::with_label_comparison_fn)).
/// Accuracy metrics read labels once per evaluation, so they live on the host.
///
/// ```
/// use pml_eval::Labels;
/// let l = Labels::new(vec![3, 1, 3]);
/// assert_eq!((l.len(), l.width()), (3, 1));
/// assert_eq!(l.row(2), &[3]);
/// let multi = Labels::from_rows(&[vec![1, 0], vec![0, 1]]).unwrap();
/// assert_eq!(multi.row(1), &[0, 1]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels {
    values: Vec<i64>,
    width: usize,
}

impl Labels {
    /// One class id per embedding.
    pub fn new(values: impl Into<Vec<i64>>) -> Self {
        Self {
            values: values.into(),
            width: 1,
        }
    }

    /// Row-major `values` with `width` integers per embedding.
    pub fn from_flat(values: Vec<i64>, width: usize) -> Result<Self, PmlError> {
        if width == 0 || !values.len().is_multiple_of(width) {
            return Err(PmlError::invalid_input(
                "labels",
                format!(
                    "{} values cannot be split into rows of width {width}",
                    values.len()
                ),
            ));
        }
        Ok(Self { values, width })
    }

    /// One row per embedding; every row must have the same, positive length.
    pub fn from_rows(rows: &[Vec<i64>]) -> Result<Self, PmlError> {
        let width = rows.first().map_or(1, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
            return Err(PmlError::invalid_input(
                "labels",
                format!(
                    "row {i} has {} values, row 0 has {width}: every row needs the same width",
                    r.len()
                ),
            ));
        }
        Self::from_flat(rows.concat(), width)
    }

    /// Reads a 1-D Int tensor (one class id per embedding).
    pub fn from_tensor<B: Backend>(labels: Tensor<B, 1, Int>) -> Self {
        Self::new(int_vec(labels))
    }

    /// Reads a 2-D Int tensor `[n, width]`.
    pub fn from_tensor_2d<B: Backend>(labels: Tensor<B, 2, Int>) -> Self {
        let [n, width] = labels.dims();
        let values = int_vec(labels.reshape([n * width]));
        Self {
            values,
            width: width.max(1),
        }
    }

    /// The number of rows (embeddings).
    pub fn len(&self) -> usize {
        self.values.len() / self.width
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Integers per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn row(&self, i: usize) -> &[i64] {
        &self.values[i * self.width..(i + 1) * self.width]
    }

    /// All values, row-major.
    pub fn as_flat(&self) -> &[i64] {
        &self.values
    }

    /// The rows at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut values = Vec::with_capacity(indices.len() * self.width);
        for &i in indices {
            values.extend_from_slice(self.row(i));
        }
        Self {
            values,
            width: self.width,
        }
    }

    /// Column `level` as width-1 labels (one level of a label hierarchy).
    ///
    /// # Panics
    /// If `level >= width()`.
    pub fn column(&self, level: usize) -> Self {
        assert!(
            level < self.width,
            "Labels::column: level {level} out of range for width {}",
            self.width
        );
        Self::new(
            self.values
                .chunks(self.width)
                .map(|r| r[level])
                .collect::<Vec<_>>(),
        )
    }

    /// These rows followed by `other`'s.
    ///
    /// # Panics
    /// If the widths differ.
    pub fn concat(&self, other: &Labels) -> Self {
        assert_eq!(
            self.width, other.width,
            "Labels::concat: widths {} and {} differ",
            self.width, other.width
        );
        let mut values = self.values.clone();
        values.extend_from_slice(&other.values);
        Self {
            values,
            width: self.width,
        }
    }

    /// The distinct rows, sorted lexicographically (PML's `torch.unique(labels, dim=0)`).
    pub fn unique_rows(&self) -> Vec<&[i64]> {
        let mut rows: Vec<&[i64]> = self.values.chunks(self.width).collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    }
}

impl From<Vec<i64>> for Labels {
    fn from(values: Vec<i64>) -> Self {
        Self::new(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_columns_and_unique() {
        let l = Labels::from_rows(&[vec![2, 0], vec![1, 0], vec![2, 0], vec![1, 1]]).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l.unique_rows(), vec![&[1, 0][..], &[1, 1], &[2, 0]]);
        assert_eq!(l.column(1), Labels::new(vec![0, 0, 0, 1]));
        assert_eq!(l.select(&[3, 0]).as_flat(), &[1, 1, 2, 0]);
        assert!(Labels::from_rows(&[vec![1], vec![1, 2]]).is_err());
        assert!(Labels::from_flat(vec![1, 2, 3], 2).is_err());
    }
}
