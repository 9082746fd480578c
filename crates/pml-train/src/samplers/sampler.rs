//! The sampler traits (PyTorch's `Sampler` and batch samplers) and [`BatchedSampler`].

/// A sampler: the dataset indices of one epoch, drawn anew at each call (PyTorch's `Sampler`,
/// which PML's samplers subclass).
///
/// Methods take `&self` (the samplers keep their seeded generator behind a lock), so one sampler
/// can be shared by the data loaders of several devices.
pub trait Sampler: Send + Sync {
    /// How many indices [`sample_epoch`](Self::sample_epoch) returns (PML's `__len__`).
    fn num_samples(&self) -> usize;

    /// The indices of one epoch, `[num_samples]` (PML's `__iter__`).
    fn sample_epoch(&self) -> Vec<usize>;
}

/// A batch sampler: the index batches of one epoch, drawn anew at each call (what PyTorch's
/// `DataLoader` takes as `batch_sampler`).
pub trait BatchSampler: Send + Sync {
    /// How many batches [`sample_batches`](Self::sample_batches) returns.
    fn num_batches(&self) -> usize;

    /// How many indices the batches of one epoch hold together.
    fn num_items(&self) -> usize;

    /// The index batches of one epoch.
    fn sample_batches(&self) -> Vec<Vec<usize>>;
}

/// Any [`Sampler`] grouped into batches of `batch_size` consecutive indices (PyTorch's
/// `BatchSampler`); the last, shorter batch is kept unless `drop_last`.
#[derive(Debug, Clone)]
pub struct BatchedSampler<S> {
    sampler: S,
    batch_size: usize,
    drop_last: bool,
}

impl<S: Sampler> BatchedSampler<S> {
    /// Groups `sampler`'s indices into batches of `batch_size`.
    ///
    /// # Panics
    /// If `batch_size == 0`.
    pub fn new(sampler: S, batch_size: usize, drop_last: bool) -> Self {
        assert!(
            batch_size > 0,
            "BatchedSampler: batch_size must be positive, got 0"
        );
        Self {
            sampler,
            batch_size,
            drop_last,
        }
    }

    /// The wrapped sampler.
    pub fn sampler(&self) -> &S {
        &self.sampler
    }
}

impl<S: Sampler> BatchSampler for BatchedSampler<S> {
    fn num_batches(&self) -> usize {
        let n = self.sampler.num_samples();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    fn num_items(&self) -> usize {
        let n = self.sampler.num_samples();
        if self.drop_last {
            n - n % self.batch_size
        } else {
            n
        }
    }

    fn sample_batches(&self) -> Vec<Vec<usize>> {
        self.sampler
            .sample_epoch()
            .chunks(self.batch_size)
            .filter(|chunk| !self.drop_last || chunk.len() == self.batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Identity(usize);

    impl Sampler for Identity {
        fn num_samples(&self) -> usize {
            self.0
        }
        fn sample_epoch(&self) -> Vec<usize> {
            (0..self.0).collect()
        }
    }

    #[test]
    fn batches_keep_or_drop_the_last_short_one() {
        let keep = BatchedSampler::new(Identity(7), 3, false);
        assert_eq!(keep.num_batches(), 3);
        assert_eq!(
            keep.sample_batches(),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
        let drop = BatchedSampler::new(Identity(7), 3, true);
        assert_eq!((keep.num_items(), drop.num_items()), (7, 6));
        assert_eq!(drop.num_batches(), 2);
        assert_eq!(drop.sample_batches().len(), 2);
    }
}
