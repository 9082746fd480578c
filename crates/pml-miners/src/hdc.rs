use std::{
    any::Any,
    sync::{Arc, Mutex},
};

use burn::{
    config::Config,
    tensor::{Bool, Int, Tensor, backend::Backend},
};
use pml_core::{
    Distance, IndicesTuple, Miner, PmlError, Reference,
    tensor::{gather_pairs, int_tensor, int_vec, take},
};
use pml_distances::{AnyDistance, DistanceConfig};

use crate::{
    MinerCounts,
    common::{Batch, LastCounts},
};

/// Configuration of [`HDCMiner`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct HDCMinerConfig {
    /// The fraction of the positive pairs and of the negative pairs to keep (the hardest
    /// ones), in `[0, 1]`.
    #[config(default = 0.5)]
    pub filter_percentage: f64,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
}

impl HDCMinerConfig {
    /// Builds the miner, refusing a `filter_percentage` outside `[0, 1]` or an invalid
    /// distance.
    pub fn try_init(&self) -> Result<HDCMiner, PmlError> {
        let f = self.filter_percentage;
        if !(0.0..=1.0).contains(&f) {
            return Err(PmlError::invalid_argument(
                "filter_percentage",
                f,
                "HDCMiner: must be in [0, 1]",
            ));
        }
        self.distance.validate()?;
        Ok(HDCMiner {
            filter_percentage: f,
            distance: self.distance.init(),
            external: Mutex::new(None),
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> HDCMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Indices set with [`HDCMiner::set_idx_externally`]: `[a1, p, a2, n]` of some backend.
type External = Arc<dyn Any + Send + Sync>;

/// The hardest fraction of the pairs (Yuan et al., "Hard-Aware Deeply Cascaded Embedding",
/// ICCV 2017; PML's `HDCMiner`).
///
/// Of the candidate positive pairs, the `⌈filter_percentage · #pos⌉` farthest are kept, and of
/// the candidate negative pairs the `⌈filter_percentage · #neg⌉` closest (mirrored for
/// similarities). The candidates are every pair the labels allow, or the pairs given with
/// [`set_idx_externally`](Self::set_idx_externally): as in PML, each call then filters the
/// pairs left by the previous call (the cascade), until [`reset_idx`](Self::reset_idx).
///
/// The selection is a sort on the device of the distance matrix with the non-candidates
/// filled to sort last (or of the gathered distances of external pairs); only the number of
/// candidates and the kept index lists are read back. Ties (a pair and its mirror have the
/// same distance) may be broken differently from PyTorch's `topk`. The counts
/// PML records are [`last_counts`](Self::last_counts).
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::Miner;
/// use pml_miners::HDCMinerConfig;
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]], &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1], &device);
/// let pairs = HDCMinerConfig::new().init().mine(x, labels, None);
/// assert_eq!((pairs.num_pos_pairs(), pairs.num_neg_pairs()), (2, 4));
/// ```
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output: pairs `(a1, p, a2, n)`
///
/// # Panics
/// If the labels' length differs from the batch's, the reference has no labels (without
/// external indices), or external indices were set for another backend.
pub struct HDCMiner {
    filter_percentage: f64,
    distance: AnyDistance,
    external: Mutex<Option<External>>,
    counts: LastCounts,
}

impl Clone for HDCMiner {
    fn clone(&self) -> Self {
        Self {
            filter_percentage: self.filter_percentage,
            distance: self.distance.clone(),
            external: Mutex::new(self.external_state()),
            counts: self.counts.clone(),
        }
    }
}

impl std::fmt::Debug for HDCMiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HDCMiner")
            .field("filter_percentage", &self.filter_percentage)
            .field("distance", &self.distance)
            .field("was_set_externally", &self.was_set_externally())
            .field("counts", &self.counts.get())
            .finish()
    }
}

impl HDCMiner {
    /// The counts of the last call (PML's `num_pos_pairs`, `num_neg_pairs`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }

    fn external_state(&self) -> Option<External> {
        self.external
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_external(&self, value: Option<External>) {
        *self.external.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Mines from these pairs (triplets `(a, p, n)` count as pairs `(a, p)` and `(a, n)`, PML's
    /// `convert_to_pairs`) instead of every pair the labels allow, until
    /// [`reset_idx`](Self::reset_idx). PML's `set_idx_externally`.
    pub fn set_idx_externally<B: Backend>(&self, indices_tuple: IndicesTuple<B>) {
        let pairs: [Tensor<B, 1, Int>; 4] = match indices_tuple {
            IndicesTuple::Pairs { a1, p, a2, n } => [a1, p, a2, n],
            IndicesTuple::Triplets { a, p, n } => [a.clone(), p, a, n],
        };
        self.set_external(Some(Arc::new(pairs)));
    }

    /// Goes back to mining from every pair the labels allow (PML's `reset_idx`).
    pub fn reset_idx(&self) {
        self.set_external(None);
    }

    /// Whether the candidate pairs were set with [`set_idx_externally`](Self::set_idx_externally).
    pub fn was_set_externally(&self) -> bool {
        self.external_state().is_some()
    }

    /// How many of `num` candidates are kept: `⌈filter_percentage · num⌉` (PML's
    /// `math.ceil(filter_percentage * num_pairs)`).
    fn keep_count(&self, num: usize) -> usize {
        ((self.filter_percentage * num as f64).ceil() as usize).min(num)
    }

    /// Keeps the hardest of the listed pairs `(anchors, others)`: those with the largest (or
    /// smallest) values.
    fn hardest_listed<B: Backend>(
        &self,
        mat: &Tensor<B, 2>,
        anchors: Tensor<B, 1, Int>,
        others: Tensor<B, 1, Int>,
        largest: bool,
    ) -> [Tensor<B, 1, Int>; 2] {
        let num = anchors.dims()[0];
        if num == 0 {
            return [anchors, others];
        }
        let values = gather_pairs(mat.clone(), anchors.clone(), others.clone());
        let (_, order) = if largest {
            values.sort_descending_with_indices(0)
        } else {
            values.sort_with_indices(0)
        };
        let idx = order.slice(0..self.keep_count(num));
        [take(anchors, idx.clone()), take(others, idx)]
    }

    /// Keeps the hardest of the pairs where `mask` is true, without listing them all: the
    /// other entries are filled so that they sort last, and the kept flat positions are split
    /// into rows and columns.
    fn hardest_masked<B: Backend>(
        &self,
        mat: &Tensor<B, 2>,
        mask: Tensor<B, 2, Bool>,
        largest: bool,
    ) -> [Tensor<B, 1, Int>; 2] {
        let [n, m] = mat.dims();
        let num = int_vec(mask.clone().int().sum())[0] as usize;
        if num == 0 {
            let none = int_tensor(&[], &mat.device());
            return [none.clone(), none];
        }
        let fill = if largest {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        let flat = mat
            .clone()
            .mask_fill(mask.bool_not(), fill)
            .reshape([n * m]);
        let (_, order) = if largest {
            flat.sort_descending_with_indices(0)
        } else {
            flat.sort_with_indices(0)
        };
        let idx = order.slice(0..self.keep_count(num));
        [
            idx.clone().div_scalar(m as i64),
            idx.remainder_scalar(m as i64),
        ]
    }
}

impl<B: Backend> Miner<B> for HDCMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let external = self.external_state();
        let batch = Batch::new("HDCMiner", embeddings, labels, reference);
        let mat = batch.matrix(&self.distance);
        let inverted = Distance::<B>::is_inverted(&self.distance);
        let ([a1, p], [a2, n]) = match &external {
            Some(e) => {
                let [a1, p, a2, n] = e
                    .downcast_ref::<[Tensor<B, 1, Int>; 4]>()
                    .unwrap_or_else(|| {
                        panic!("HDCMiner: the external indices were set for another backend")
                    })
                    .clone();
                (
                    self.hardest_listed(&mat, a1, p, !inverted),
                    self.hardest_listed(&mat, a2, n, inverted),
                )
            }
            None => {
                let (matches, diffs) = batch.masks();
                (
                    self.hardest_masked(&mat, matches, !inverted),
                    self.hardest_masked(&mat, diffs, inverted),
                )
            }
        };
        if external.is_some() {
            // PML filters its stored indices in place: the next call cascades from these.
            self.set_external(Some(Arc::new([
                a1.clone(),
                p.clone(),
                a2.clone(),
                n.clone(),
            ])));
        }
        let tuple = IndicesTuple::pairs(a1, p, a2, n);
        self.counts.record(&tuple);
        tuple
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::backend::NdArray;

    #[test]
    fn keeps_the_hardest_fraction() {
        // Positive pairs (0,1) d=1, (2,3) d=0.2 and their mirrors; negatives by distance.
        let x = [[0.0], [1.0], [3.0], [3.2]];
        let labels = [0, 0, 1, 1];
        let miner = HDCMinerConfig::new()
            .with_filter_percentage(0.5)
            .with_distance(raw_lp())
            .init();
        let (pos, neg) = pair_sets(miner.mine(floats(&x), ints(&labels), None));
        assert_eq!(pos, set2(&[(0, 1), (1, 0)]));
        // 8 negatives → 4 closest: (1,2), (2,1) d=2 and (1,3), (3,1) d=2.2.
        assert_eq!(neg, set2(&[(1, 2), (2, 1), (1, 3), (3, 1)]));
        assert_eq!(miner.last_counts().num_neg_pairs, 4);
    }

    #[test]
    fn external_indices_cascade_until_reset() {
        let x = [[0.0], [1.0], [3.0], [3.5]];
        let labels = [0, 0, 1, 1];
        let miner = HDCMinerConfig::new()
            .with_filter_percentage(0.5)
            .with_distance(raw_lp())
            .init();
        let device = Default::default();
        miner.set_idx_externally(IndicesTuple::<NdArray>::triplets_from_slices(
            &[0, 0, 2, 2],
            &[1, 1, 3, 3],
            &[2, 3, 1, 1],
            &device,
        ));
        assert!(miner.was_set_externally());
        // Positives (0,1) d=1 twice, (2,3) d=0.5 twice → the 2 farthest; negatives (0,2) d=3,
        // (0,3) d=3.5, (2,1) d=2 twice → the 2 closest.
        let (pos, neg) = pair_lists(miner.mine(floats(&x), ints(&labels), None));
        assert_eq!((pos, neg), (vec![(0, 1), (0, 1)], vec![(2, 1), (2, 1)]));
        // The second call filters the survivors: one of each.
        let (pos, neg) = pair_lists(miner.mine(floats(&x), ints(&labels), None));
        assert_eq!((pos, neg), (vec![(0, 1)], vec![(2, 1)]));
        miner.reset_idx();
        let t = miner.mine(floats(&x), ints(&labels), None);
        assert_eq!((t.num_pos_pairs(), t.num_neg_pairs()), (2, 4));
    }

    #[test]
    fn refuses_percentages_outside_the_unit_interval() {
        for f in [-0.1, 1.5, f64::NAN] {
            assert!(
                HDCMinerConfig::new()
                    .with_filter_percentage(f)
                    .try_init()
                    .is_err()
            );
        }
    }
}
