use burn::{
    config::Config,
    tensor::{Int, Tensor, TensorData, backend::Backend},
};
use pml_core::{
    IndicesTuple, Miner, PmlError, Reference,
    labels::pairwise_equal,
    rng::SeededRng,
    tensor::{int_tensor, int_vec, is_nan},
};
use pml_distances::{AnyDistance, DistanceConfig};

use crate::{
    MinerCounts,
    common::{Batch, CHUNK_ELEMENTS, LastCounts, require_finite, require_normalized_l2},
};

/// Configuration of [`DistanceWeightedMiner`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct DistanceWeightedMinerConfig {
    /// Distances are clamped below at this value before weighting (avoids high variance).
    #[config(default = 0.5)]
    pub cutoff: f64,
    /// Negatives at this distance or farther get weight 0 (they would have zero loss).
    #[config(default = 1.4)]
    pub nonzero_loss_cutoff: f64,
    /// The distance: PML requires `LpDistance(p=2, power=1, normalize_embeddings=True)`, its
    /// default.
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
    /// Seed of the sampler (not in PML, which uses PyTorch's global generator).
    #[config(default = 0)]
    pub seed: u64,
}

impl DistanceWeightedMinerConfig {
    /// Builds the miner, refusing non-finite cutoffs or any distance other than
    /// `LpDistance(p=2, power=1, normalize_embeddings=True)` (as PML's `assert_distance_type`).
    pub fn try_init(&self) -> Result<DistanceWeightedMiner, PmlError> {
        require_finite("DistanceWeightedMiner", "cutoff", self.cutoff)?;
        require_finite(
            "DistanceWeightedMiner",
            "nonzero_loss_cutoff",
            self.nonzero_loss_cutoff,
        )?;
        require_normalized_l2("DistanceWeightedMiner", &self.distance)?;
        Ok(DistanceWeightedMiner {
            cutoff: self.cutoff,
            nonzero_loss_cutoff: self.nonzero_loss_cutoff,
            distance: self.distance.init(),
            rng: SeededRng::new(self.seed),
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> DistanceWeightedMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Distance-weighted sampling (Wu et al., "Sampling Matters in Deep Embedding Learning",
/// ICCV 2017; PML's `DistanceWeightedMiner`).
///
/// On the unit sphere in `d` dimensions, pairwise distances have density
/// `q(x) ∝ x^(d−2) (1 − x²/4)^((d−3)/2)`; negatives are drawn with weight `1/q`:
/// `w(a, n) = exp((2 − d) log x − ((d − 3)/2) log(1 − x²/4) − max)` with
/// `x = max(d(a, n), cutoff)`, set to 0 for pairs of the same label, for
/// `x ≥ nonzero_loss_cutoff` and where the logarithms are not finite (`max` is the largest
/// finite log-weight of the matrix, as in PML).
///
/// As PML's `get_random_triplet_indices(weights=...)`: every anchor whose label has another
/// sample (or a sample in the reference set) gets as many triplets as its label has reference
/// samples, each with a uniformly drawn positive (never itself) and a negative drawn with the
/// weights of its row; anchors whose weights are all zero get none. The negatives are drawn on
/// the device by inverse-CDF sampling on the cumulated weights, with uniforms from the miner's
/// seeded generator; only the labels and one flag per anchor are read back. The counts PML
/// records are [`last_counts`](Self::last_counts).
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Distribution, Int, Tensor};
/// use pml_core::Miner;
/// use pml_miners::DistanceWeightedMinerConfig;
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::random([8, 4], Distribution::Normal(0.0, 1.0), &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1, 2, 2, 3, 3], &device);
/// let miner = DistanceWeightedMinerConfig::new().with_nonzero_loss_cutoff(2.0).with_seed(7).init();
/// let t = miner.mine(x, labels, None);
/// assert_eq!(miner.last_counts().num_triplets, 16); // 8 anchors × 2 samples per label
/// # let _ = t;
/// ```
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output: triplets `(a, p, n)`
///
/// # Panics
/// If the labels' length differs from the batch's, or the reference has no labels.
#[derive(Clone, Debug)]
pub struct DistanceWeightedMiner {
    cutoff: f64,
    nonzero_loss_cutoff: f64,
    distance: AnyDistance,
    rng: SeededRng,
    counts: LastCounts,
}

impl DistanceWeightedMiner {
    /// The counts of the last call (PML's `num_triplets`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }

    /// The unnormalized sampling weights `[n, m]` (zero for positives and excluded pairs).
    pub(crate) fn weights<B: Backend>(&self, batch: &Batch<B>) -> Tensor<B, 2> {
        let d = batch.embeddings.dims()[1] as f64;
        let mat = batch.matrix(&self.distance).clamp_min(self.cutoff);
        let log_weights = mat.clone().log().mul_scalar(2.0 - d)
            - mat
                .clone()
                .powi_scalar(2)
                .mul_scalar(-0.25)
                .add_scalar(1.0)
                .log()
                .mul_scalar((d - 3.0) / 2.0);
        let bad = is_nan(log_weights.clone()).bool_or(log_weights.clone().is_inf());
        let same = pairwise_equal(&batch.labels, &batch.reference_labels());
        let log_weights = log_weights.mask_fill(same.clone(), 0.0);
        let max = log_weights
            .clone()
            .mask_fill(bad.clone(), f64::NEG_INFINITY)
            .max()
            .reshape([1, 1]);
        let [n, m] = mat.dims();
        let far = mat.greater_equal_elem(self.nonzero_loss_cutoff);
        (log_weights - max.expand([n, m]))
            .exp()
            .mask_fill(same.bool_or(far).bool_or(bad), 0.0)
    }
}

impl<B: Backend> Miner<B> for DistanceWeightedMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let batch = Batch::new("DistanceWeightedMiner", embeddings, labels, reference);
        let device = batch.device();
        let weights = self.weights(&batch);
        let [n, m] = weights.dims();
        let cdf = weights.cumsum(1);
        let totals = cdf.clone().slice([0..n, m.saturating_sub(1)..m]);
        // One flag per anchor: rows without any weight yield no triplets (PML's
        // `non_zero_rows`).
        let has_weight = int_vec(totals.clone().greater_elem(0.0).int().reshape([n]));

        // Anchors and positives from the labels, on the host (as PML's sampler).
        let is_self = batch.ref_labels.is_none();
        let lab = int_vec(batch.labels.clone());
        let refl = match &batch.ref_labels {
            Some(r) => int_vec(r.clone()),
            None => lab.clone(),
        };
        let mut unique = lab.clone();
        unique.sort_unstable();
        unique.dedup();
        let (mut a, mut p) = (Vec::new(), Vec::new());
        for label in unique {
            let pos: Vec<i64> = (0..refl.len() as i64)
                .filter(|&j| refl[j as usize] == label)
                .collect();
            let min_pos = if is_self { 2 } else { 1 };
            if pos.len() < min_pos || pos.len() == refl.len() {
                continue;
            }
            let anchors = (0..lab.len()).filter(|&i| lab[i] == label);
            for (ai, anchor) in anchors.enumerate() {
                if has_weight[anchor] == 0 {
                    continue;
                }
                for _ in 0..pos.len() {
                    let positive = if is_self {
                        // Skip the anchor's own position among the positives.
                        let k = self.rng.below(pos.len() - 1);
                        pos[if k >= ai { k + 1 } else { k }]
                    } else {
                        pos[self.rng.below(pos.len())]
                    };
                    a.push(anchor as i64);
                    p.push(positive);
                }
            }
        }

        // Negatives: inverse-CDF sampling of each triplet's anchor row, in blocks of triplets.
        // With u in (0, 1], the index #{j : cdf[j] < u · total} always has a positive weight.
        let num = a.len();
        let anchors = int_tensor::<B>(&a, &device);
        let uniforms: Vec<f64> = (0..num).map(|_| 1.0 - self.rng.uniform()).collect();
        let uniforms =
            Tensor::<B, 1>::from_data(TensorData::new(uniforms, [num]), (&device, cdf.dtype()));
        let rows = (CHUNK_ELEMENTS / m.max(1)).max(1);
        let mut negatives = Vec::new();
        for s in (0..num).step_by(rows) {
            let e = (s + rows).min(num);
            let idx = anchors.clone().slice(s..e);
            let target = totals.clone().select(0, idx.clone())
                * uniforms.clone().slice(s..e).reshape([e - s, 1]);
            let below = cdf.clone().select(0, idx).lower(target.expand([e - s, m]));
            negatives.push(
                below
                    .int()
                    .sum_dim(1)
                    .clamp(0, m as i64 - 1)
                    .reshape([e - s]),
            );
        }
        let negatives = if negatives.is_empty() {
            int_tensor(&[], &device)
        } else {
            Tensor::cat(negatives, 0)
        };
        let tuple = IndicesTuple::triplets(anchors, int_tensor(&p, &device), negatives);
        self.counts.record(&tuple);
        tuple
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use pml_core::tensor::float_vec;

    /// Host reference of the weights of one row, straight from the formula.
    fn host_weights(
        x: &[Vec<f64>],
        labels: &[i64],
        anchor: usize,
        cutoff: f64,
        nz: f64,
    ) -> Vec<f64> {
        let d = x[0].len() as f64;
        let norm = |v: &Vec<f64>| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        let unit: Vec<Vec<f64>> = x
            .iter()
            .map(|v| v.iter().map(|a| a / norm(v)).collect())
            .collect();
        let dist = |i: usize, j: usize| {
            unit[i]
                .iter()
                .zip(&unit[j])
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt()
        };
        let logw = |x: f64| (2.0 - d) * x.ln() - ((d - 3.0) / 2.0) * (1.0 - 0.25 * x * x).ln();
        (0..x.len())
            .map(|j| {
                let dx = dist(anchor, j).max(cutoff);
                if labels[j] == labels[anchor] || dx >= nz {
                    0.0
                } else {
                    logw(dx).exp()
                }
            })
            .collect()
    }

    #[test]
    fn negative_frequencies_follow_the_weights() {
        let n = 12;
        let x = randn(n, 5, 11);
        let labels: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
        let xs: Vec<Vec<f64>> = float_vec(x.clone()).chunks(5).map(|c| c.to_vec()).collect();
        let miner = DistanceWeightedMinerConfig::new()
            .with_cutoff(0.3)
            .with_nonzero_loss_cutoff(1.9)
            .with_seed(5)
            .init();
        let anchor = 0;
        let want = host_weights(&xs, &labels, anchor, 0.3, 1.9);
        let total: f64 = want.iter().sum();
        assert!(total > 0.0);
        let mut counts = vec![0usize; n];
        let mut draws = 0;
        for _ in 0..2000 {
            let IndicesTuple::Triplets { a, p, n: neg } =
                miner.mine(x.clone(), ints(&labels), None)
            else {
                panic!()
            };
            let (a, p, neg) = (int_vec(a), int_vec(p), int_vec(neg));
            for k in 0..a.len() {
                let (ak, pk, nk) = (a[k] as usize, p[k] as usize, neg[k] as usize);
                assert!(ak != pk && labels[ak] == labels[pk] && labels[ak] != labels[nk]);
                if ak == anchor {
                    counts[nk] += 1;
                    draws += 1;
                }
            }
        }
        // Total variation distance between the empirical and the weight distribution.
        let tv: f64 = counts
            .iter()
            .zip(&want)
            .map(|(&c, w)| (c as f64 / draws as f64 - w / total).abs())
            .sum::<f64>()
            / 2.0;
        assert!(tv < 0.03, "TV distance {tv} ({counts:?} vs {want:?})");
        // Zero weights are never drawn.
        for (c, w) in counts.iter().zip(&want) {
            if *w == 0.0 {
                assert_eq!(*c, 0, "{counts:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn rows_without_weight_yield_nothing_and_the_seed_repeats() {
        // Everything within the cutoff: all weights 0 once nonzero_loss_cutoff is tiny.
        let x = floats2(&[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]);
        let labels = ints(&[0, 0, 1, 1]);
        let miner = DistanceWeightedMinerConfig::new()
            .with_nonzero_loss_cutoff(0.1)
            .init();
        assert_eq!(
            miner.mine(x.clone(), labels.clone(), None).num_triplets(),
            0
        );
        let seeded = |seed| {
            let miner = DistanceWeightedMinerConfig::new()
                .with_nonzero_loss_cutoff(2.0)
                .with_seed(seed)
                .init();
            triplet_list(miner.mine(x.clone(), labels.clone(), None))
        };
        assert_eq!(seeded(3), seeded(3));
        assert_eq!(seeded(3).len(), 8);
    }

    #[test]
    fn refuses_other_distances() {
        assert!(
            DistanceWeightedMinerConfig::new()
                .with_distance(DistanceConfig::cosine())
                .try_init()
                .is_err()
        );
    }
}
