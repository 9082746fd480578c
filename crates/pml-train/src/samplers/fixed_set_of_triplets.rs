//! PML's `FixedSetOfTriplets`.

use std::sync::Mutex;

use burn::config::Config;
use pml_core::{PmlError, rng::SeededRng};

use super::common::{labels_to_indices, safe_random_choice, shuffle};
use super::sampler::Sampler;

/// Configuration of [`FixedSetOfTriplets`], with PML's argument names.
#[derive(Config, Debug)]
pub struct FixedSetOfTripletsConfig {
    /// How many triplets to draw, once.
    pub num_triplets: usize,
    /// Seed of the sampler's generator (PML draws from numpy's global generator).
    #[config(default = 0)]
    pub seed: u64,
}

impl FixedSetOfTripletsConfig {
    /// Draws the triplets for a dataset whose item `i` has label `labels[i]`.
    ///
    /// # Errors
    /// [`PmlError::InvalidArgument`] when `num_triplets` is 0 or `labels` has fewer than two
    /// distinct labels.
    pub fn try_init(&self, labels: &[i64]) -> Result<FixedSetOfTriplets, PmlError> {
        if self.num_triplets == 0 {
            return Err(PmlError::invalid_argument(
                "num_triplets",
                0,
                "must be positive",
            ));
        }
        let groups = labels_to_indices(labels);
        if groups.len() < 2 {
            return Err(PmlError::invalid_argument(
                "labels",
                format!("{} distinct labels", groups.len()),
                "triplets need at least two classes",
            ));
        }
        let rng = SeededRng::new(self.seed);
        let classes: Vec<usize> = (0..groups.len()).collect();
        let triplets = (0..self.num_triplets)
            .map(|_| {
                let pair = safe_random_choice(&rng, &classes, 2);
                let (anchors, negatives) = (&groups[pair[0]].1, &groups[pair[1]].1);
                let ap = safe_random_choice(&rng, anchors, 2);
                [ap[0], ap[1], negatives[rng.below(negatives.len())]]
            })
            .collect();
        Ok(FixedSetOfTriplets {
            triplets: Mutex::new(triplets),
            rng,
        })
    }

    /// Draws the triplets.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self, labels: &[i64]) -> FixedSetOfTriplets {
        self.try_init(labels).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A fixed set of triplets drawn once (PML's `FixedSetOfTriplets`), seeded: for experiments where
/// the only supervision is a set of triplets rather than labels.
///
/// Each triplet `(anchor, positive, negative)` comes from two distinct random classes: anchor and
/// positive from the first (distinct items when the class has two or more), the negative from the
/// second. Each epoch shuffles the triplets and yields them flattened, `a, p, n, a, p, n, ...`,
/// so batches of a multiple of 3 hold whole triplets.
///
/// ```
/// use pml_train::samplers::{FixedSetOfTripletsConfig, Sampler};
/// let labels = [0, 0, 1, 1, 2, 2];
/// let sampler = FixedSetOfTripletsConfig::new(5).init(&labels);
/// let epoch = sampler.sample_epoch();
/// assert_eq!(epoch.len(), 15);
/// for t in epoch.chunks(3) {
///     assert_eq!(labels[t[0]], labels[t[1]]);
///     assert_ne!(labels[t[0]], labels[t[2]]);
/// }
/// ```
#[derive(Debug)]
pub struct FixedSetOfTriplets {
    triplets: Mutex<Vec<[usize; 3]>>,
    rng: SeededRng,
}

impl FixedSetOfTriplets {
    /// The triplets, `[num_triplets]` rows of `(anchor, positive, negative)`, in the order of the
    /// last epoch.
    pub fn triplets(&self) -> Vec<[usize; 3]> {
        self.triplets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Sampler for FixedSetOfTriplets {
    fn num_samples(&self) -> usize {
        3 * self
            .triplets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    fn sample_epoch(&self) -> Vec<usize> {
        let mut triplets = self.triplets.lock().unwrap_or_else(|e| e.into_inner());
        shuffle(&self.rng, &mut triplets);
        triplets.iter().flatten().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_what_pml_cannot_draw() {
        let e = FixedSetOfTripletsConfig::new(0)
            .try_init(&[0, 1])
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid value for `num_triplets`: 0")
        );
        let e = FixedSetOfTripletsConfig::new(3)
            .try_init(&[4, 4])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for `labels`: 1 distinct labels (triplets need at least two classes)"
        );
    }

    proptest! {
        #[test]
        fn every_epoch_is_the_same_set_of_valid_triplets(
            labels in proptest::collection::vec(0i64..5, 2..40),
            num_triplets in 1usize..30,
            seed in any::<u64>(),
        ) {
            let classes = labels_to_indices(&labels).len();
            prop_assume!(classes >= 2);
            let config = FixedSetOfTripletsConfig::new(num_triplets).with_seed(seed);
            let sampler = config.init(&labels);
            let mut fixed = sampler.triplets();
            prop_assert_eq!(sampler.num_samples(), 3 * num_triplets);
            for [a, p, n] in &fixed {
                prop_assert_eq!(labels[*a], labels[*p]);
                prop_assert_ne!(labels[*a], labels[*n]);
                let class_size = labels.iter().filter(|&&l| l == labels[*a]).count();
                if class_size >= 2 {
                    prop_assert_ne!(a, p);
                }
            }
            fixed.sort_unstable();
            for _ in 0..2 {
                let mut epoch: Vec<[usize; 3]> = sampler
                    .sample_epoch()
                    .chunks(3)
                    .map(|t| [t[0], t[1], t[2]])
                    .collect();
                epoch.sort_unstable();
                prop_assert_eq!(&epoch, &fixed);
            }
            prop_assert_eq!(config.init(&labels).sample_epoch(), config.init(&labels).sample_epoch());
        }
    }
}
