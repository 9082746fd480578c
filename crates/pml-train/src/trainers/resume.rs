//! [`SkipEpochs`]: replays the epochs a resumed run already trained on its data loader, so the
//! resumed epochs get the batches an uninterrupted run would have had.

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderIterator};
use burn::tensor::backend::Backend;

/// A training loader that, on the device burn-train moves it to, first draws and drops
/// `epochs` epochs.
///
/// Loaders that shuffle or sample anew each epoch (burn's `DataLoaderBuilder::shuffle(seed)`,
/// [`SamplerDataLoader`](crate::samplers::SamplerDataLoader)) advance a random state every
/// time an epoch starts. A run resumed from the checkpoint of epoch `e` builds a fresh loader;
/// without this, its epoch `e + 1` would see the batches of epoch 1. burn-train calls
/// [`to_device`](DataLoader::to_device) once per run before the first epoch, and the loader it
/// returns draws the epochs, so the skipped draws happen on the same random state as in an
/// uninterrupted run. (With `num_workers`, burn's threads draw their epochs concurrently, which
/// no replay can make deterministic.)
pub(crate) struct SkipEpochs<B: Backend, O> {
    inner: Arc<dyn DataLoader<B, O>>,
    epochs: usize,
}

impl<B: Backend, O> SkipEpochs<B, O> {
    /// Wraps `inner`, skipping `epochs` epochs on each loader it hands out.
    pub(crate) fn new(inner: Arc<dyn DataLoader<B, O>>, epochs: usize) -> Self {
        Self { inner, epochs }
    }

    fn skipped(&self, loader: Arc<dyn DataLoader<B, O>>) -> Arc<dyn DataLoader<B, O>> {
        for _ in 0..self.epochs {
            drop(loader.iter());
        }
        loader
    }
}

impl<B: Backend, O: 'static> DataLoader<B, O> for SkipEpochs<B, O> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        self.inner.iter()
    }

    fn num_items(&self) -> usize {
        self.inner.num_items()
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, O>> {
        self.skipped(self.inner.to_device(device))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, O>> {
        self.skipped(self.inner.slice(start, end))
    }
}
