use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::Distance;

use crate::{AnyDistance, DistanceConfig};

/// Configuration of [`BatchedDistance`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct BatchedDistanceConfig {
    /// The distance to compute block by block.
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
    /// Query rows per block.
    #[config(default = 32)]
    pub batch_size: usize,
}

impl BatchedDistanceConfig {
    /// Builds the batched distance.
    ///
    /// # Panics
    /// If `batch_size` is 0, or the inner distance's hyperparameters are invalid.
    pub fn init(&self) -> BatchedDistance {
        assert!(
            self.batch_size > 0,
            "BatchedDistance: `batch_size` must be positive, got 0"
        );
        BatchedDistance {
            distance: self.distance.init(),
            batch_size: self.batch_size,
        }
    }
}

/// Computes a distance matrix in blocks of query rows and hands each block to a callback
/// (PML's `BatchedDistance` with its `iter_fn`), so that an `[n, m]` matrix never has to exist at
/// once.
///
/// ```
/// # use burn::{backend::NdArray, tensor::Tensor};
/// use pml_distances::BatchedDistanceConfig;
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::ones([5, 3], &device);
/// let mut rows = Vec::new();
/// BatchedDistanceConfig::new().with_batch_size(2).init().for_each_block(x, None, |block, s, e| {
///     assert_eq!(block.dims(), [e - s, 5]);
///     rows.push((s, e));
/// });
/// assert_eq!(rows, vec![(0, 2), (2, 4), (4, 5)]);
/// ```
#[derive(Clone, Debug)]
pub struct BatchedDistance {
    /// The inner distance.
    pub distance: AnyDistance,
    /// Query rows per block.
    pub batch_size: usize,
}

impl BatchedDistance {
    /// Calls `iter_fn(block, start, end)` for each block of query rows `start..end`, with
    /// `block = distance(query[start..end], reference)` of shape `[end − start, m]`
    /// (`reference = None`: the query itself).
    pub fn for_each_block<B: Backend>(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
        mut iter_fn: impl FnMut(Tensor<B, 2>, usize, usize),
    ) {
        let [n, d] = query.dims();
        let reference = reference.unwrap_or_else(|| query.clone());
        for s in (0..n).step_by(self.batch_size) {
            let e = (s + self.batch_size).min(n);
            let block = self
                .distance
                .forward(query.clone().slice([s..e, 0..d]), Some(reference.clone()));
            iter_fn(block, s, e);
        }
    }
}
