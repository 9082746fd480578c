//! [`SamplerDataLoader`]: a Burn `DataLoader` whose batches follow a sampler.

use std::ops::Range;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;

use super::sampler::BatchSampler;

/// A Burn [`DataLoader`] whose batches are a [`BatchSampler`]'s index batches, drawn anew each
/// time an epoch starts ([`iter`](DataLoader::iter)): the dataset items at those indices, in that
/// order, go through the batcher.
///
/// Burn's `DataLoaderBuilder` only shuffles or keeps the dataset's order; this is the counterpart
/// of PyTorch's `DataLoader(dataset, batch_sampler=...)` (or `sampler=...` with
/// [`BatchedSampler`](super::BatchedSampler)). It implements Burn's `DataLoader` trait, so it can
/// be handed to burn-train's `Learner` as `Arc<dyn DataLoader<B, O>>`, or iterated directly.
///
/// [`num_items`](DataLoader::num_items) counts the items of one epoch (with repeats).
/// [`slice`](DataLoader::slice)`(start, end)` (burn-train's split across devices) keeps the
/// batches that start at an item position in `start..end` of each epoch, so batches are never
/// cut (a slice's `num_items` counts those batches, exactly when all batches have one size);
/// each slice draws its own epochs from the shared sampler.
///
/// ```
/// use std::sync::Arc;
/// use burn::backend::NdArray;
/// use burn::data::dataloader::DataLoader;
/// use pml_train::datasets::{VectorBatch, VectorBatcher, VectorDataset};
/// use pml_train::samplers::{MPerClassSamplerConfig, SamplerDataLoader};
///
/// let labels: Vec<i64> = (0..40).map(|i| i % 4).collect();
/// let dataset = VectorDataset::new(vec![0.5; 40 * 3], labels.clone(), 3);
/// let sampler = MPerClassSamplerConfig::new(2)
///     .with_batch_size(Some(8))
///     .with_length_before_new_iter(40)
///     .with_seed(7)
///     .init(&labels);
/// let loader: Arc<dyn DataLoader<NdArray, VectorBatch<NdArray>>> = Arc::new(
///     SamplerDataLoader::new(sampler, dataset, VectorBatcher, Default::default()),
/// );
/// for _epoch in 0..2 {
///     for batch in loader.iter() {
///         assert_eq!(batch.images.dims(), [8, 3]); // 4 classes x 2 samples
///     }
/// }
/// ```
pub struct SamplerDataLoader<B: Backend, I, O> {
    sampler: Arc<dyn BatchSampler>,
    dataset: Arc<dyn Dataset<I>>,
    batcher: Arc<dyn Batcher<B, I, O>>,
    device: B::Device,
    items: Option<Range<usize>>,
}

impl<B: Backend, I, O> SamplerDataLoader<B, I, O> {
    /// A loader drawing `sampler`'s batches of `dataset` items, batched by `batcher` on `device`.
    pub fn new(
        sampler: impl BatchSampler + 'static,
        dataset: impl Dataset<I> + 'static,
        batcher: impl Batcher<B, I, O> + 'static,
        device: B::Device,
    ) -> Self {
        Self {
            sampler: Arc::new(sampler),
            dataset: Arc::new(dataset),
            batcher: Arc::new(batcher),
            device,
            items: None,
        }
    }

    /// The batches of one new epoch, those of this slice only.
    fn epoch_batches(&self) -> Vec<Vec<usize>> {
        let batches = self.sampler.sample_batches();
        match &self.items {
            None => batches,
            Some(range) => {
                let mut start = 0;
                batches
                    .into_iter()
                    .filter(|batch| {
                        let keep = range.contains(&start);
                        start += batch.len();
                        keep
                    })
                    .collect()
            }
        }
    }

    fn with(&self, device: B::Device, items: Option<Range<usize>>) -> Self {
        Self {
            sampler: self.sampler.clone(),
            dataset: self.dataset.clone(),
            batcher: self.batcher.clone(),
            device,
            items,
        }
    }
}

impl<B, I, O> DataLoader<B, O> for SamplerDataLoader<B, I, O>
where
    B: Backend,
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        let batches = self.epoch_batches();
        let total = batches.iter().map(Vec::len).sum();
        Box::new(SamplerIterator {
            loader: self,
            batches: batches.into_iter(),
            processed: 0,
            total,
        })
    }

    fn num_items(&self) -> usize {
        let total = self.sampler.num_items();
        let Some(range) = &self.items else {
            return total;
        };
        // The batches whose start lies in the range, assuming batches of equal size.
        let batches = self.sampler.num_batches();
        let size = total.checked_div(batches).unwrap_or(0);
        (0..batches).filter(|b| range.contains(&(b * size))).count() * size
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, O>> {
        Arc::new(self.with(device.clone(), self.items.clone()))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, O>> {
        let offset = self.items.as_ref().map_or(0, |r| r.start);
        Arc::new(self.with(self.device.clone(), Some(offset + start..offset + end)))
    }
}

struct SamplerIterator<'a, B: Backend, I, O> {
    loader: &'a SamplerDataLoader<B, I, O>,
    batches: std::vec::IntoIter<Vec<usize>>,
    processed: usize,
    total: usize,
}

impl<B: Backend, I, O> Iterator for SamplerIterator<'_, B, I, O> {
    type Item = O;

    fn next(&mut self) -> Option<O> {
        let indices = self.batches.next()?;
        self.processed += indices.len();
        let dataset = &self.loader.dataset;
        let items = indices
            .iter()
            .map(|&i| {
                dataset.get(i).unwrap_or_else(|| {
                    panic!(
                        "SamplerDataLoader: the sampler gave index {i}, the dataset has {} items \
                         (was the sampler built from another dataset's labels?)",
                        dataset.len()
                    )
                })
            })
            .collect();
        Some(self.loader.batcher.batch(items, &self.loader.device))
    }
}

impl<B: Backend, I, O> DataLoaderIterator<O> for SamplerIterator<'_, B, I, O> {
    fn progress(&self) -> Progress {
        Progress::new(self.processed, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::{VectorBatcher, VectorDataset};
    use crate::samplers::MPerClassSamplerConfig;
    use burn_ndarray::NdArray;
    use pml_core::tensor::{float_vec, int_vec};

    type B = NdArray;

    #[test]
    fn follows_the_sampler_and_draws_a_new_epoch_each_iteration() {
        let labels: Vec<i64> = (0..30).map(|i| i % 3).collect();
        let features: Vec<f32> = (0..30).map(|i| i as f32).collect();
        let dataset = VectorDataset::new(features, labels.clone(), 1);
        let config = MPerClassSamplerConfig::new(2)
            .with_batch_size(Some(4))
            .with_length_before_new_iter(12)
            .with_seed(5);
        let loader = SamplerDataLoader::<B, _, _>::new(
            config.init(&labels),
            dataset,
            VectorBatcher,
            Default::default(),
        );
        assert_eq!(loader.num_items(), 12);
        let reference = config.init(&labels);
        for _epoch in 0..2 {
            let expected = reference.sample_batches();
            let mut iter = loader.iter();
            for indices in &expected {
                let batch = iter.next().unwrap();
                let values: Vec<usize> = float_vec(batch.images)
                    .iter()
                    .map(|&v| v as usize)
                    .collect();
                assert_eq!(&values, indices);
                let batch_labels: Vec<i64> = indices.iter().map(|&i| labels[i]).collect();
                assert_eq!(int_vec(batch.labels), batch_labels);
            }
            assert_eq!(iter.progress().items_processed, 12);
            assert!(iter.next().is_none());
        }

        let halves = [loader.slice(0, 6), loader.slice(6, 12)];
        // Three batches of 4 start at items 0, 4 and 8: two in the first half, one in the second.
        assert_eq!((halves[0].num_items(), halves[1].num_items()), (8, 4));
        assert_eq!((halves[0].iter().count(), halves[1].iter().count()), (2, 1));
        let nested = halves[1].slice(0, 4);
        assert_eq!((nested.num_items(), nested.iter().count()), (4, 1));
        let moved = loader.to_device(&Default::default());
        assert_eq!(moved.iter().count(), 3);
    }
}
