//! Miners of **pml-rs** (PML's `miners` module): they pick informative pairs or triplets out
//! of a batch, to feed a loss.
//!
//! Every miner implements [`Miner`](pml_core::Miner): `mine(embeddings, labels, reference)`
//! returns an [`IndicesTuple`](pml_core::IndicesTuple) of Int tensors on the embeddings'
//! device, and never builds an autodiff graph (the inputs are detached). Each has a
//! `XxxConfig` with PML's argument names and defaults, its PML distance slot, and a place in
//! [`MinerConfig`], a serializable enum tagged by PML's class name. After each call,
//! `last_counts()` gives the counts PML records (`num_pos_pairs`, `num_neg_pairs`,
//! `num_triplets`, see [`MinerCounts`]).
//!
//! Mining works with masks, row extrema, sorts and matrix products on the device; only the
//! final index lists (and, for the samplers, the labels and a few counts) are read back,
//! never the distance matrix. Triplet miners evaluate positive pairs × reference rows in
//! bounded blocks instead of PML's `[n, m, m]` mask.
//!
//! Any loss accepts a miner's output: pair losses split triplets into pairs and triplet losses
//! combine pairs by anchor, as PML does (`pml_core::labels::convert_to_pairs` /
//! `convert_to_triplets`).
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::{Int, Tensor};
//! use pml_core::Miner;
//! use pml_miners::MultiSimilarityMinerConfig;
//!
//! let device = Default::default();
//! let embeddings = Tensor::<NdArray, 2>::from_floats(
//!     [[1.0, 0.0], [0.7, 0.7], [0.9, 0.2], [0.0, 1.0]],
//!     &device,
//! );
//! let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1], &device);
//! let miner = MultiSimilarityMinerConfig::new().with_epsilon(0.1).init();
//! let pairs = miner.mine(embeddings, labels, None);
//! assert_eq!(miner.last_counts().num_pos_pairs, pairs.num_pos_pairs());
//! ```
#![warn(missing_docs)]

mod angular;
mod any;
mod batch_easy_hard;
mod batch_hard;
mod common;
mod distance_weighted;
mod embeddings_already_packaged_as_triplets;
mod hdc;
mod multi_similarity;
mod pair_margin;
mod triplet_margin;
mod uniform_histogram;

pub use angular::{AngularMiner, AngularMinerConfig};
pub use any::{AnyMiner, MinerConfig};
pub use batch_easy_hard::{BatchEasyHardMiner, BatchEasyHardMinerConfig, BatchMiningStrategy};
pub use batch_hard::{BatchHardMiner, BatchHardMinerConfig};
pub use common::MinerCounts;
pub use distance_weighted::{DistanceWeightedMiner, DistanceWeightedMinerConfig};
pub use embeddings_already_packaged_as_triplets::{
    EmbeddingsAlreadyPackagedAsTriplets, EmbeddingsAlreadyPackagedAsTripletsConfig,
};
pub use hdc::{HDCMiner, HDCMinerConfig};
pub use multi_similarity::{MultiSimilarityMiner, MultiSimilarityMinerConfig};
pub use pair_margin::{PairMarginMiner, PairMarginMinerConfig};
pub use triplet_margin::{TripletMarginMiner, TripletMarginMinerConfig, TypeOfTriplets};
pub use uniform_histogram::{UniformHistogramMiner, UniformHistogramMinerConfig};

#[cfg(test)]
pub(crate) mod test_util {
    use std::collections::BTreeSet;

    use burn::tensor::{Int, Tensor, TensorData};
    use pml_core::{IndicesTuple, tensor::int_vec};
    use pml_distances::{DistanceConfig, DotProductSimilarityConfig, LpDistanceConfig};

    pub type B = burn::backend::NdArray;

    /// Index pairs on the host.
    pub type Pairs = Vec<(i64, i64)>;
    /// A set of index pairs.
    pub type PairSet = BTreeSet<(i64, i64)>;

    pub fn floats<const D: usize>(rows: &[[f32; D]]) -> Tensor<B, 2> {
        let data: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(data, [rows.len(), D]), &Default::default())
    }

    /// `[n, d]` standard normal values from a seeded generator (Box-Muller).
    pub fn randn(n: usize, d: usize, seed: u64) -> Tensor<B, 2> {
        let rng = pml_core::rng::SeededRng::new(seed);
        let data: Vec<f32> = (0..n * d)
            .map(|_| {
                let (u, v) = (1.0 - rng.uniform(), rng.uniform());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect();
        Tensor::from_data(TensorData::new(data, [n, d]), &Default::default())
    }

    pub fn floats2(rows: &[[f32; 2]]) -> Tensor<B, 2> {
        floats(rows)
    }

    pub fn ints(v: &[i64]) -> Tensor<B, 1, Int> {
        pml_core::tensor::int_tensor(v, &Default::default())
    }

    pub fn raw_lp() -> DistanceConfig {
        DistanceConfig::Lp(LpDistanceConfig::new().with_normalize_embeddings(false))
    }

    pub fn dot() -> DistanceConfig {
        DistanceConfig::DotProduct(
            DotProductSimilarityConfig::new().with_normalize_embeddings(false),
        )
    }

    pub fn pair_lists(t: IndicesTuple<B>) -> (Pairs, Pairs) {
        let IndicesTuple::Pairs { a1, p, a2, n } = t else {
            panic!("expected pairs")
        };
        let zip = |x: Vec<i64>, y: Vec<i64>| x.into_iter().zip(y).collect::<Vec<_>>();
        (zip(int_vec(a1), int_vec(p)), zip(int_vec(a2), int_vec(n)))
    }

    pub fn pair_sets(t: IndicesTuple<B>) -> (PairSet, PairSet) {
        let (pos, neg) = pair_lists(t);
        (set2(&pos), set2(&neg))
    }

    pub fn triplet_list(t: IndicesTuple<B>) -> Vec<(i64, i64, i64)> {
        let IndicesTuple::Triplets { a, p, n } = t else {
            panic!("expected triplets")
        };
        let (a, p, n) = (int_vec(a), int_vec(p), int_vec(n));
        (0..a.len()).map(|k| (a[k], p[k], n[k])).collect()
    }

    pub fn triplet_set(t: IndicesTuple<B>) -> BTreeSet<(i64, i64, i64)> {
        triplet_list(t).into_iter().collect()
    }

    pub fn set2(v: &[(i64, i64)]) -> BTreeSet<(i64, i64)> {
        v.iter().copied().collect()
    }

    pub fn set3(v: &[(i64, i64, i64)]) -> BTreeSet<(i64, i64, i64)> {
        v.iter().copied().collect()
    }
}
