use burn::{
    config::Config,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{IndicesTuple, Miner, PmlError, Reference};
use pml_distances::DistanceConfig;

use crate::{MinerCounts, common::LastCounts};

/// Configuration of [`EmbeddingsAlreadyPackagedAsTriplets`] (PML takes only the keyword
/// arguments of `BaseMiner`; the distance is unused).
#[derive(Config, Debug)]
pub struct EmbeddingsAlreadyPackagedAsTripletsConfig {
    /// Unused: PML's `BaseMiner` slot (default `LpDistance`).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
}

impl EmbeddingsAlreadyPackagedAsTripletsConfig {
    /// Builds the miner.
    pub fn try_init(&self) -> Result<EmbeddingsAlreadyPackagedAsTriplets, PmlError> {
        self.distance.validate()?;
        Ok(EmbeddingsAlreadyPackagedAsTriplets {
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> EmbeddingsAlreadyPackagedAsTriplets {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The batch is already made of triplets: rows `3k`, `3k + 1`, `3k + 2` are the anchor, the
/// positive and the negative of triplet `k` (PML's `EmbeddingsAlreadyPackagedAsTriplets`). The
/// labels and the reference set are ignored.
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::{IndicesTuple, Miner, tensor::int_vec};
/// use pml_miners::EmbeddingsAlreadyPackagedAsTripletsConfig;
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::zeros([6, 2], &device);
/// let labels = Tensor::<NdArray, 1, Int>::zeros([6], &device);
/// let miner = EmbeddingsAlreadyPackagedAsTripletsConfig::new().init();
/// let IndicesTuple::Triplets { a, p, n } = miner.mine(x, labels, None) else { unreachable!() };
/// assert_eq!((int_vec(a), int_vec(p), int_vec(n)), (vec![0, 3], vec![1, 4], vec![2, 5]));
/// ```
///
/// # Shapes
/// - embeddings `[3k, d]`, labels `[3k]`
/// - output: triplets `(a, p, n)`, each `[k]`
///
/// # Panics
/// If the batch size is not a multiple of 3 (PML fails its output check then), or the labels'
/// length differs from the batch's.
#[derive(Clone, Debug)]
pub struct EmbeddingsAlreadyPackagedAsTriplets {
    counts: LastCounts,
}

impl EmbeddingsAlreadyPackagedAsTriplets {
    /// The counts of the last call (PML's `num_triplets`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }
}

impl<B: Backend> Miner<B> for EmbeddingsAlreadyPackagedAsTriplets {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        _reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let [n, d] = embeddings.dims();
        assert_eq!(
            labels.dims()[0],
            n,
            "EmbeddingsAlreadyPackagedAsTriplets: `labels` has length {} but `embeddings` has shape [{n}, {d}]",
            labels.dims()[0]
        );
        assert!(
            n % 3 == 0,
            "EmbeddingsAlreadyPackagedAsTriplets: the batch size must be a multiple of 3, got `embeddings` of shape [{n}, {d}]"
        );
        let device = embeddings.device();
        let k = (n / 3) as i64;
        let base = Tensor::<B, 1, Int>::arange(0..k, &device).mul_scalar(3);
        let tuple =
            IndicesTuple::triplets(base.clone(), base.clone().add_scalar(1), base.add_scalar(2));
        self.counts.record(&tuple);
        tuple
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    #[should_panic(expected = "multiple of 3")]
    fn refuses_a_batch_that_is_not_made_of_triplets() {
        let miner = EmbeddingsAlreadyPackagedAsTripletsConfig::new().init();
        let _ = miner.mine(floats(&[[0.0], [1.0]]), ints(&[0, 0]), None);
    }

    #[test]
    fn empty_batch_gives_no_triplets() {
        let miner = EmbeddingsAlreadyPackagedAsTripletsConfig::new().init();
        let t = miner.mine(floats::<1>(&[]), ints(&[]), None);
        assert_eq!(t.num_triplets(), 0);
    }
}
