//! PML's `MPerClassSampler`.

use burn::config::Config;
use pml_core::{PmlError, rng::SeededRng};

use super::common::{labels_to_indices, safe_random_choice, shuffle};
use super::sampler::{BatchSampler, Sampler};

/// Configuration of [`MPerClassSampler`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct MPerClassSamplerConfig {
    /// Samples per class in each group of `m` (drawn with replacement when a class has fewer).
    pub m: usize,
    /// The batch size the sampler is built for: each batch then holds `batch_size / m` classes,
    /// `m` samples each. Without it, every pass over the classes draws `m` of each class.
    pub batch_size: Option<usize>,
    /// The nominal epoch length, rounded down to a multiple of `batch_size` (or of
    /// `m * classes`).
    #[config(default = 100000)]
    pub length_before_new_iter: usize,
    /// Seed of the sampler's generator (PML draws from numpy's global generator).
    #[config(default = 0)]
    pub seed: u64,
}

impl MPerClassSamplerConfig {
    /// Builds the sampler for a dataset whose item `i` has label `labels[i]`, with PML's checks.
    ///
    /// # Errors
    /// [`PmlError::InvalidArgument`] naming the argument when: `labels` is empty; `m == 0`;
    /// `batch_size == 0`; `length_before_new_iter < batch_size`; `m * (number of classes) <
    /// batch_size`; `m` does not divide `batch_size`.
    pub fn try_init(&self, labels: &[i64]) -> Result<MPerClassSampler, PmlError> {
        if labels.is_empty() {
            return Err(PmlError::invalid_argument(
                "labels",
                "[]",
                "MPerClassSampler needs at least one labelled item",
            ));
        }
        if self.m == 0 {
            return Err(PmlError::invalid_argument("m", 0, "must be positive"));
        }
        let groups: Vec<Vec<usize>> = labels_to_indices(labels)
            .into_iter()
            .map(|(_, indices)| indices)
            .collect();
        let length_of_single_pass = self.m * groups.len();
        let mut list_size = self.length_before_new_iter;
        match self.batch_size {
            None => {
                if length_of_single_pass < list_size {
                    list_size -= list_size % length_of_single_pass;
                }
            }
            Some(batch_size) => {
                if batch_size == 0 {
                    return Err(PmlError::invalid_argument(
                        "batch_size",
                        0,
                        "must be positive",
                    ));
                }
                if list_size < batch_size {
                    return Err(PmlError::invalid_argument(
                        "length_before_new_iter",
                        list_size,
                        format!("must be >= batch_size ({batch_size})"),
                    ));
                }
                if length_of_single_pass < batch_size {
                    return Err(PmlError::invalid_argument(
                        "m",
                        self.m,
                        format!(
                            "m * (number of unique labels) = {} * {} must be >= batch_size ({batch_size})",
                            self.m,
                            groups.len()
                        ),
                    ));
                }
                if batch_size % self.m != 0 {
                    return Err(PmlError::invalid_argument(
                        "batch_size",
                        batch_size,
                        format!(
                            "m_per_class ({}) must divide batch_size without any remainder",
                            self.m
                        ),
                    ));
                }
                list_size -= list_size % batch_size;
            }
        }
        Ok(MPerClassSampler {
            m: self.m,
            batch_size: self.batch_size,
            groups,
            list_size,
            rng: SeededRng::new(self.seed),
        })
    }

    /// Builds the sampler.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self, labels: &[i64]) -> MPerClassSampler {
        self.try_init(labels).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// `m` samples per class at a time (PML's `MPerClassSampler`), seeded.
///
/// Each draw shuffles the classes and takes `m` samples of each of the first `batch_size / m`
/// classes (all classes without `batch_size`), without replacement when the class has `m`
/// samples or more, else with replacement; an epoch repeats this until
/// [`num_samples`](Sampler::num_samples) indices. With `batch_size`, every consecutive
/// `batch_size` indices are one such draw, so each batch has exactly `batch_size / m` distinct
/// classes with `m` samples each.
///
/// As a [`BatchSampler`] it yields those batches (`num_samples / batch_size` of them); without
/// `batch_size`, one batch per pass over the classes (`m * classes` indices).
///
/// Epoch length (PML's `__len__`): `length_before_new_iter` rounded down to a multiple of
/// `batch_size` (or of `m * classes` when that is smaller). One deliberate difference: without
/// `batch_size` and with `m * classes > length_before_new_iter`, PML's iterator yields
/// `m * classes` indices while its `__len__` says `length_before_new_iter`; here
/// `num_samples` says `m * classes`, what the epoch holds.
///
/// ```
/// use pml_train::samplers::{BatchSampler, MPerClassSamplerConfig, Sampler};
/// let labels: Vec<i64> = (0..100).map(|i| i % 10).collect();
/// let sampler = MPerClassSamplerConfig::new(4)
///     .with_batch_size(Some(20))
///     .with_length_before_new_iter(70)
///     .with_seed(1)
///     .init(&labels);
/// assert_eq!(sampler.num_samples(), 60);
/// for batch in sampler.sample_batches() {
///     assert_eq!(batch.len(), 20); // 5 classes x 4 samples
/// }
/// ```
#[derive(Debug, Clone)]
pub struct MPerClassSampler {
    m: usize,
    batch_size: Option<usize>,
    groups: Vec<Vec<usize>>,
    list_size: usize,
    rng: SeededRng,
}

impl MPerClassSampler {
    /// The number of distinct labels.
    pub fn num_classes(&self) -> usize {
        self.groups.len()
    }

    fn length_of_single_pass(&self) -> usize {
        self.m * self.groups.len()
    }

    /// Indices per draw: `batch_size`, or `m * classes`.
    fn draw_size(&self) -> usize {
        self.batch_size.unwrap_or(self.length_of_single_pass())
    }

    /// PML's `calculate_num_iters`.
    fn num_draws(&self) -> usize {
        let divisor = self.draw_size();
        if divisor < self.list_size {
            self.list_size / divisor
        } else {
            1
        }
    }
}

impl Sampler for MPerClassSampler {
    fn num_samples(&self) -> usize {
        self.num_draws() * self.draw_size()
    }

    fn sample_epoch(&self) -> Vec<usize> {
        let classes_per_draw = self.draw_size() / self.m;
        let mut order: Vec<usize> = (0..self.groups.len()).collect();
        let mut out = Vec::with_capacity(self.num_samples());
        for _ in 0..self.num_draws() {
            shuffle(&self.rng, &mut order);
            for &class in &order[..classes_per_draw] {
                out.extend(safe_random_choice(&self.rng, &self.groups[class], self.m));
            }
        }
        out
    }
}

impl BatchSampler for MPerClassSampler {
    fn num_batches(&self) -> usize {
        self.num_draws()
    }

    fn num_items(&self) -> usize {
        self.num_samples()
    }

    fn sample_batches(&self) -> Vec<Vec<usize>> {
        self.sample_epoch()
            .chunks(self.draw_size())
            .map(<[usize]>::to_vec)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn counts(labels: &[i64], batch: &[usize]) -> HashMap<i64, usize> {
        let mut c = HashMap::new();
        for &i in batch {
            *c.entry(labels[i]).or_insert(0) += 1;
        }
        c
    }

    #[test]
    fn pml_checks_name_the_argument() {
        let labels: Vec<i64> = (0..30).map(|i| i % 3).collect();
        let err = |c: MPerClassSamplerConfig| c.try_init(&labels).unwrap_err().to_string();
        assert_eq!(
            err(MPerClassSamplerConfig::new(4).with_batch_size(Some(16))),
            "invalid value for `m`: 4 (m * (number of unique labels) = 4 * 3 must be >= batch_size (16))"
        );
        assert_eq!(
            err(MPerClassSamplerConfig::new(4).with_batch_size(Some(6))),
            "invalid value for `batch_size`: 6 (m_per_class (4) must divide batch_size without any remainder)"
        );
        assert!(
            err(MPerClassSamplerConfig::new(2)
                .with_batch_size(Some(6))
                .with_length_before_new_iter(5))
            .starts_with("invalid value for `length_before_new_iter`: 5")
        );
        assert!(err(MPerClassSamplerConfig::new(0)).starts_with("invalid value for `m`: 0"));
        assert!(
            MPerClassSamplerConfig::new(2)
                .try_init(&[])
                .unwrap_err()
                .to_string()
                .starts_with("invalid value for `labels`")
        );
    }

    #[test]
    fn lengths_as_pml_computes_them() {
        let labels: Vec<i64> = (0..50).map(|i| i % 5).collect();
        // No batch size: rounded down to a multiple of m * classes = 15.
        let s = MPerClassSamplerConfig::new(3)
            .with_length_before_new_iter(100)
            .init(&labels);
        assert_eq!((s.num_samples(), s.sample_epoch().len()), (90, 90));
        assert_eq!(s.num_batches(), 6);
        // m * classes larger than the length: one pass (PML's iterator does the same).
        let s = MPerClassSamplerConfig::new(3)
            .with_length_before_new_iter(10)
            .init(&labels);
        assert_eq!((s.num_samples(), s.sample_epoch().len()), (15, 15));
        // With a batch size: a multiple of it.
        let s = MPerClassSamplerConfig::new(3)
            .with_batch_size(Some(12))
            .with_length_before_new_iter(100)
            .init(&labels);
        assert_eq!(s.num_samples(), 96);
        assert_eq!(s.num_batches(), 8);
    }

    #[test]
    fn small_classes_are_drawn_with_replacement() {
        let labels = [0, 0, 1, 2, 2, 2];
        let s = MPerClassSamplerConfig::new(3)
            .with_batch_size(Some(9))
            .with_length_before_new_iter(9)
            .init(&labels);
        let batch = &s.sample_batches()[0];
        let c = counts(&labels, batch);
        assert_eq!(c, HashMap::from([(0, 3), (1, 3), (2, 3)]));
        // Class 2 has exactly m samples: no repeats.
        let mut twos: Vec<usize> = batch.iter().copied().filter(|&i| labels[i] == 2).collect();
        twos.sort_unstable();
        assert_eq!(twos, vec![3, 4, 5]);
    }

    #[test]
    fn mnist_quick_start_shape() {
        let labels = crate::datasets::mnist_test_set()
            .subset(0..7000)
            .labels()
            .to_vec();
        let s = MPerClassSamplerConfig::new(16)
            .with_batch_size(Some(160))
            .with_length_before_new_iter(7000)
            .init(&labels);
        let batches = s.sample_batches();
        assert_eq!(batches.len(), 43);
        for batch in &batches {
            let c = counts(&labels, batch);
            assert_eq!(c.len(), 10);
            assert!(c.values().all(|&n| n == 16));
        }
    }

    proptest! {
        #[test]
        fn every_batch_has_m_per_class(
            labels in proptest::collection::vec(0i64..8, 1..120),
            m in 1usize..5,
            classes_per_batch in 1usize..8,
            batches in 1usize..6,
            extra in 0usize..7,
            seed in any::<u64>(),
        ) {
            let num_classes = labels_to_indices(&labels).len();
            prop_assume!(classes_per_batch <= num_classes);
            let batch_size = m * classes_per_batch;
            let length = batch_size * batches + extra % batch_size;
            let config = MPerClassSamplerConfig::new(m)
                .with_batch_size(Some(batch_size))
                .with_length_before_new_iter(length)
                .with_seed(seed);
            let sampler = config.init(&labels);
            prop_assert_eq!(sampler.num_samples(), batch_size * batches);
            let epoch = sampler.sample_batches();
            prop_assert_eq!(epoch.len(), batches);
            prop_assert_eq!(epoch.len(), sampler.num_batches());
            for batch in &epoch {
                prop_assert_eq!(batch.len(), batch_size);
                prop_assert!(batch.iter().all(|&i| i < labels.len()));
                let c = counts(&labels, batch);
                prop_assert_eq!(c.len(), classes_per_batch);
                prop_assert!(c.values().all(|&n| n == m));
                // Without replacement whenever the class has at least m samples.
                for (label, _) in c {
                    let available = labels.iter().filter(|&&l| l == label).count();
                    let mut picked: Vec<usize> =
                        batch.iter().copied().filter(|&i| labels[i] == label).collect();
                    picked.sort_unstable();
                    picked.dedup();
                    prop_assert!(picked.len() <= available.min(m));
                    if available >= m {
                        prop_assert_eq!(picked.len(), m);
                    }
                }
            }
            // Same seed, same epochs.
            let again = config.init(&labels);
            prop_assert_eq!(again.sample_batches(), epoch);
        }

        #[test]
        fn without_batch_size_every_pass_covers_every_class(
            labels in proptest::collection::vec(0i64..6, 1..60),
            m in 1usize..4,
            length in 1usize..200,
            seed in any::<u64>(),
        ) {
            let sampler = MPerClassSamplerConfig::new(m)
                .with_length_before_new_iter(length)
                .with_seed(seed)
                .init(&labels);
            let pass = m * labels_to_indices(&labels).len();
            let expected = if pass < length { length - length % pass } else { pass };
            prop_assert_eq!(sampler.num_samples(), expected);
            let epoch = sampler.sample_epoch();
            prop_assert_eq!(epoch.len(), expected);
            for chunk in epoch.chunks(pass) {
                let c = counts(&labels, chunk);
                prop_assert!(c.values().all(|&n| n == m));
                prop_assert_eq!(c.len(), pass / m);
            }
        }
    }
}
