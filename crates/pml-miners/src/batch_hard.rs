use burn::{
    config::Config,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{IndicesTuple, Miner, PmlError, Reference};
use pml_distances::DistanceConfig;

use crate::{
    BatchEasyHardMiner, BatchEasyHardMinerConfig, BatchMiningStrategy, MinerCounts,
    common::{Batch, LastCounts},
};

/// Configuration of [`BatchHardMiner`], with PML's argument names and defaults (the keyword
/// arguments PML passes on to `BatchEasyHardMiner`).
#[derive(Config, Debug)]
pub struct BatchHardMinerConfig {
    /// Only positive pairs whose distance lies in `[low, high]` are candidates.
    pub allowed_pos_range: Option<[f64; 2]>,
    /// Only negative pairs whose distance lies in `[low, high]` are candidates.
    pub allowed_neg_range: Option<[f64; 2]>,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
}

impl BatchHardMinerConfig {
    /// Builds the miner, refusing inverted ranges and invalid distances.
    pub fn try_init(&self) -> Result<BatchHardMiner, PmlError> {
        let inner = BatchEasyHardMinerConfig::new()
            .with_pos_strategy(BatchMiningStrategy::Hard)
            .with_neg_strategy(BatchMiningStrategy::Hard)
            .with_allowed_pos_range(self.allowed_pos_range)
            .with_allowed_neg_range(self.allowed_neg_range)
            .with_distance(self.distance.clone())
            .try_init()?;
        Ok(BatchHardMiner {
            inner,
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> BatchHardMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The hardest positive and the hardest negative of every anchor, as triplets (Hermans et al.,
/// "In Defense of the Triplet Loss for Person Re-Identification", 2017; PML's
/// `BatchHardMiner`, a [`BatchEasyHardMiner`] with both strategies `"hard"`).
///
/// For each anchor `a` that has a positive and a negative: `p = argmax d(a, ·)` over its
/// positives and `n = argmin d(a, ·)` over its negatives (mirrored for similarities).
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::{IndicesTuple, Miner, tensor::int_vec};
/// use pml_miners::BatchHardMinerConfig;
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]], &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1], &device);
/// let IndicesTuple::Triplets { a, p, n } = BatchHardMinerConfig::new().init().mine(x, labels, None)
/// else { unreachable!() };
/// assert_eq!(int_vec(a), vec![0, 1, 2, 3]);
/// assert_eq!(int_vec(p), vec![1, 0, 3, 2]);
/// assert_eq!(int_vec(n), vec![2, 3, 0, 1]);
/// ```
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output: triplets `(a, p, n)`, at most one per anchor
///
/// # Panics
/// If the labels' length differs from the batch's, or the reference has no labels.
#[derive(Clone, Debug)]
pub struct BatchHardMiner {
    inner: BatchEasyHardMiner,
    counts: LastCounts,
}

impl BatchHardMiner {
    /// The counts of the last call (PML's `num_triplets`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }
}

impl<B: Backend> Miner<B> for BatchHardMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let batch = Batch::new("BatchHardMiner", embeddings, labels, reference);
        let [a, p, _, n] = self.inner.mine_pairs(&batch);
        let tuple = IndicesTuple::triplets(a, p, n);
        self.counts.record(&tuple);
        tuple
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn anchors_without_a_positive_are_dropped() {
        let x = [[0.0], [0.1], [0.5], [0.7]];
        let miner = BatchHardMinerConfig::new().with_distance(raw_lp()).init();
        let t = miner.mine(floats(&x), ints(&[0, 0, 0, 1]), None);
        assert_eq!(triplet_set(t), set3(&[(0, 2, 3), (1, 2, 3), (2, 0, 3)]));
        assert_eq!(miner.last_counts().num_triplets, 3);
    }
}
