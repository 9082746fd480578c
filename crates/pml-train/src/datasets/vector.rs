//! An in-memory dataset of feature vectors with integer labels (MNIST, CSV files), its batcher.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use pml_core::tensor::int_tensor;

/// One item of a [`VectorDataset`]: a feature vector (`[dim]`) and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorItem {
    /// The features, `dim` values.
    pub features: Vec<f32>,
    /// The class label.
    pub label: i64,
}

/// A batch of a [`VectorDataset`], on the device.
///
/// # Shapes
/// `images`: `[batch, dim]`; `labels`: `[batch]`.
#[derive(Clone, Debug)]
pub struct VectorBatch<B: Backend> {
    /// The feature vectors, one row per item (named `images`: MNIST and the digits are images).
    pub images: Tensor<B, 2>,
    /// The labels.
    pub labels: Tensor<B, 1, Int>,
}

/// Feature vectors `[n, dim]` (row-major, `f32`) with one `i64` label each, held in memory.
///
/// Cloning is cheap (the storage is shared); [`subset`](Self::subset) and
/// [`select`](Self::select) copy the chosen rows. Implements Burn's
/// [`Dataset<VectorItem>`](Dataset); [`VectorBatcher`] turns items into a [`VectorBatch`], and
/// [`batch`](Self::batch) builds a batch straight from indices (the order a sampler gives).
#[derive(Clone, Debug)]
pub struct VectorDataset {
    features: Arc<Vec<f32>>,
    labels: Arc<Vec<i64>>,
    dim: usize,
}

impl VectorDataset {
    /// A dataset from row-major `features` (`[labels.len(), dim]`) and `labels`.
    ///
    /// # Panics
    /// If `features.len() != labels.len() * dim`.
    pub fn new(features: Vec<f32>, labels: Vec<i64>, dim: usize) -> Self {
        assert_eq!(
            features.len(),
            labels.len() * dim,
            "VectorDataset::new: features has {} values, expected labels.len() * dim = {} * {}",
            features.len(),
            labels.len(),
            dim
        );
        Self {
            features: Arc::new(features),
            labels: Arc::new(labels),
            dim,
        }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The number of values per item.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All labels, `[n]`.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// All features, row-major `[n, dim]`.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The features of item `index`, `[dim]`.
    ///
    /// # Panics
    /// If `index >= len`.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.features[index * self.dim..(index + 1) * self.dim]
    }

    /// The items `range` (for example `0..7000` to train and `7000..10000` to test).
    ///
    /// # Panics
    /// If the range goes past the end.
    pub fn subset(&self, range: std::ops::Range<usize>) -> Self {
        assert!(
            range.start <= range.end && range.end <= self.labels.len(),
            "VectorDataset::subset: range {range:?} is outside 0..{}",
            self.labels.len()
        );
        Self::new(
            self.features[range.start * self.dim..range.end * self.dim].to_vec(),
            self.labels[range].to_vec(),
            self.dim,
        )
    }

    /// The items at `indices`, in that order (repeats allowed).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut features = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Self::new(features, labels, self.dim)
    }

    /// The items at `indices` as one batch on `device`, without going through [`VectorItem`]s.
    ///
    /// # Shapes
    /// `images`: `[indices.len(), dim]`; `labels`: `[indices.len()]`.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn batch<B: Backend>(&self, indices: &[usize], device: &B::Device) -> VectorBatch<B> {
        let mut features = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i]).collect();
        VectorBatch {
            images: Tensor::from_data(TensorData::new(features, [indices.len(), self.dim]), device),
            labels: int_tensor(&labels, device),
        }
    }

    /// The whole dataset as one batch on `device` (`images`: `[n, dim]`, `labels`: `[n]`).
    pub fn to_tensors<B: Backend>(&self, device: &B::Device) -> VectorBatch<B> {
        VectorBatch {
            images: Tensor::from_data(
                TensorData::new(self.features.to_vec(), [self.labels.len(), self.dim]),
                device,
            ),
            labels: int_tensor(&self.labels, device),
        }
    }
}

impl Dataset<VectorItem> for VectorDataset {
    fn get(&self, index: usize) -> Option<VectorItem> {
        (index < self.labels.len()).then(|| VectorItem {
            features: self.row(index).to_vec(),
            label: self.labels[index],
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// Stacks [`VectorItem`]s into a [`VectorBatch`] (Burn's [`Batcher`]).
///
/// # Panics
/// If the items do not all have the same length.
#[derive(Clone, Copy, Debug, Default)]
pub struct VectorBatcher;

impl<B: Backend> Batcher<B, VectorItem, VectorBatch<B>> for VectorBatcher {
    fn batch(&self, items: Vec<VectorItem>, device: &B::Device) -> VectorBatch<B> {
        let dim = items.first().map_or(0, |item| item.features.len());
        let mut features = Vec::with_capacity(items.len() * dim);
        let mut labels = Vec::with_capacity(items.len());
        for item in &items {
            assert_eq!(
                item.features.len(),
                dim,
                "VectorBatcher: items have {} and {} features",
                dim,
                item.features.len()
            );
            features.extend_from_slice(&item.features);
            labels.push(item.label);
        }
        VectorBatch {
            images: Tensor::from_data(TensorData::new(features, [items.len(), dim]), device),
            labels: int_tensor(&labels, device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_ndarray::NdArray;
    use pml_core::tensor::{float_vec, int_vec};

    type B = NdArray;

    fn tiny() -> VectorDataset {
        VectorDataset::new(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], vec![7, 8, 9], 2)
    }

    #[test]
    fn items_subsets_and_batches() {
        let ds = tiny();
        assert_eq!(ds.len(), 3);
        assert_eq!(
            ds.get(1),
            Some(VectorItem {
                features: vec![2.0, 3.0],
                label: 8
            })
        );
        assert_eq!(ds.get(3), None);
        assert_eq!(ds.subset(1..3).labels(), &[8, 9]);
        assert_eq!(
            ds.select(&[2, 0, 2]).features(),
            &[4.0, 5.0, 0.0, 1.0, 4.0, 5.0]
        );

        let device = Default::default();
        let batch = ds.batch::<B>(&[2, 0], &device);
        assert_eq!(batch.images.dims(), [2, 2]);
        assert_eq!(float_vec(batch.images), vec![4.0, 5.0, 0.0, 1.0]);
        assert_eq!(int_vec(batch.labels), vec![9, 7]);

        let items = vec![ds.get(0).unwrap(), ds.get(2).unwrap()];
        let batch: VectorBatch<B> = VectorBatcher.batch(items, &device);
        assert_eq!(float_vec(batch.images), vec![0.0, 1.0, 4.0, 5.0]);
        assert_eq!(int_vec(batch.labels), vec![7, 9]);
    }
}
