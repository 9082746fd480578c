use burn::{
    config::Config,
    tensor::{Bool, IndexingUpdateOp, Int, Tensor, backend::Backend},
};
use pml_core::{
    IndicesTuple, Miner, PmlError, Reference,
    rng::SeededRng,
    tensor::{int_tensor, int_vec},
};
use pml_distances::{AnyDistance, DistanceConfig};

use crate::{
    MinerCounts,
    common::{Batch, LastCounts},
};

/// Configuration of [`UniformHistogramMiner`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct UniformHistogramMinerConfig {
    /// Number of equal-width bins between the smallest and the largest pair distance.
    #[config(default = 100)]
    pub num_bins: usize,
    /// Positive pairs drawn (with replacement) from each non-empty bin.
    #[config(default = 10)]
    pub pos_per_bin: usize,
    /// Negative pairs drawn (with replacement) from each non-empty bin.
    #[config(default = 10)]
    pub neg_per_bin: usize,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
    /// Seed of the sampler (not in PML, which uses PyTorch's global generator).
    #[config(default = 0)]
    pub seed: u64,
}

impl UniformHistogramMinerConfig {
    /// Builds the miner, refusing zero bins or zero pairs per bin (PyTorch's `multinomial`
    /// refuses to draw zero samples) and invalid distances.
    pub fn try_init(&self) -> Result<UniformHistogramMiner, PmlError> {
        for (argument, value) in [
            ("num_bins", self.num_bins),
            ("pos_per_bin", self.pos_per_bin),
            ("neg_per_bin", self.neg_per_bin),
        ] {
            if value == 0 {
                return Err(PmlError::invalid_argument(
                    argument,
                    value,
                    "UniformHistogramMiner: must be positive",
                ));
            }
        }
        self.distance.validate()?;
        Ok(UniformHistogramMiner {
            num_bins: self.num_bins,
            pos_per_bin: self.pos_per_bin,
            neg_per_bin: self.neg_per_bin,
            distance: self.distance.init(),
            rng: SeededRng::new(self.seed),
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> UniformHistogramMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Pairs spread uniformly over the range of distances (PML's `UniformHistogramMiner`).
///
/// The positive pair distances are split into `num_bins` equal-width bins between their
/// minimum and maximum (the last bin closed); from every non-empty bin `pos_per_bin` pairs
/// are drawn uniformly with replacement. Likewise for the negative pairs with `neg_per_bin`.
///
/// The bins are computed on the device over the masked distance matrix (no list of every pair
/// is built); only the bin counts are read back, the draws come from the miner's seeded
/// generator, and the drawn pairs are picked on the device.
/// The counts PML records are [`last_counts`](Self::last_counts).
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::Miner;
/// use pml_miners::UniformHistogramMinerConfig;
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1], &device);
/// let miner = UniformHistogramMinerConfig::new().with_num_bins(2).with_pos_per_bin(3).init();
/// let pairs = miner.mine(x, labels, None);
/// // Every positive pair is at distance √2: one non-empty bin, 3 draws. The negative pairs
/// // are at 0 or √2: two bins, 10 draws each.
/// assert_eq!((pairs.num_pos_pairs(), pairs.num_neg_pairs()), (3, 20));
/// ```
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output: pairs `(a1, p, a2, n)`
///
/// # Panics
/// If the labels' length differs from the batch's, or the reference has no labels.
#[derive(Clone, Debug)]
pub struct UniformHistogramMiner {
    num_bins: usize,
    pos_per_bin: usize,
    neg_per_bin: usize,
    distance: AnyDistance,
    rng: SeededRng,
    counts: LastCounts,
}

impl UniformHistogramMiner {
    /// The counts of the last call (PML's `num_pos_pairs`, `num_neg_pairs`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }

    /// Draws `per_bin` of the pairs where `mask` is true from each non-empty bin of their
    /// values. Bin `b` holds `⌊(x − min) / (max − min) · num_bins⌋ = b` (the maximum in the
    /// last bin, as PML's `linspace(min, max, num_bins + 1)` edges); the other entries, and
    /// non-finite values, go to an extra bin `num_bins` that is never drawn from.
    fn spread<B: Backend>(
        &self,
        mat: &Tensor<B, 2>,
        mask: Tensor<B, 2, Bool>,
        per_bin: usize,
    ) -> [Tensor<B, 1, Int>; 2] {
        let [n, m] = mat.dims();
        let device = mat.device();
        let nb = self.num_bins;
        let k = n * m;
        let values = mat.clone().reshape([k]);
        // Non-finite distances (from NaN or infinite embeddings) are never drawn: they have
        // no bin, and NaN cannot be cast to an int.
        let outside = mask
            .reshape([k])
            .bool_and(values.clone().is_finite())
            .bool_not();
        let lo = values
            .clone()
            .mask_fill(outside.clone(), f64::INFINITY)
            .min();
        let hi = values
            .clone()
            .mask_fill(outside.clone(), f64::NEG_INFINITY)
            .max();
        let width = (hi - lo.clone()).clamp_min(f32::MIN_POSITIVE);
        // Non-candidates (possibly infinite once shifted) are zeroed before the cast to ints.
        let bins = ((values - lo.expand([k])) / width.expand([k]))
            .mul_scalar(nb as f64)
            .mask_fill(outside.clone(), 0.0)
            .clamp(0.0, (nb - 1) as f64)
            .floor()
            .int()
            .mask_fill(outside, nb as i64);
        let counts = int_vec(Tensor::<B, 1, Int>::zeros([nb + 1], &device).scatter(
            0,
            bins.clone(),
            bins.ones_like(),
            IndexingUpdateOp::Add,
        ));
        // Entries grouped by bin: the members of bin b are order[start_b .. start_b + count_b].
        let (_, order) = bins.sort_with_indices(0);
        let mut picks = Vec::with_capacity(per_bin * nb);
        let mut start = 0i64;
        for &count in &counts[..nb] {
            if count > 0 {
                for _ in 0..per_bin {
                    picks.push(start + self.rng.below(count as usize) as i64);
                }
            }
            start += count;
        }
        let idx = order.select(0, int_tensor(&picks, &device));
        [
            idx.clone().div_scalar(m as i64),
            idx.remainder_scalar(m as i64),
        ]
    }
}

impl<B: Backend> Miner<B> for UniformHistogramMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let batch = Batch::new("UniformHistogramMiner", embeddings, labels, reference);
        let mat = batch.matrix(&self.distance);
        let (matches, diffs) = batch.masks();
        let [a1, p] = self.spread(&mat, matches, self.pos_per_bin);
        let [a2, n] = self.spread(&mat, diffs, self.neg_per_bin);
        let tuple = IndicesTuple::pairs(a1, p, a2, n);
        self.counts.record(&tuple);
        tuple
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use std::collections::HashMap;

    #[test]
    fn every_non_empty_bin_gets_its_share_uniformly() {
        // Raw 1-D points: negative distances spread over [0.1, 5]; 4 bins.
        let x = [[0.0], [0.1], [0.5], [2.0], [2.2], [5.0]];
        let labels = [0, 1, 2, 3, 4, 5];
        let miner = UniformHistogramMinerConfig::new()
            .with_num_bins(4)
            .with_neg_per_bin(5)
            .with_distance(raw_lp())
            .with_seed(1)
            .init();
        let host: Vec<f64> = x.iter().map(|v| v[0] as f64).collect();
        let dist = |(i, j): (i64, i64)| (host[i as usize] - host[j as usize]).abs();
        let all: Vec<(i64, i64)> = (0..6)
            .flat_map(|i| (0..6).filter(move |&j| j != i).map(move |j| (i, j)))
            .collect();
        let (lo, hi) = (0.1, 5.0);
        let bin = |d: f64| (((d - lo) / (hi - lo) * 4.0).floor() as usize).min(3);
        let mut members = [0usize; 4];
        for &pair in &all {
            members[bin(dist(pair))] += 1;
        }
        let nonempty = members.iter().filter(|&&c| c > 0).count();
        let mut freq: HashMap<(i64, i64), usize> = HashMap::new();
        let rounds = 400;
        for _ in 0..rounds {
            let (pos, neg) = pair_lists(miner.mine(floats(&x), ints(&labels), None));
            assert!(pos.is_empty());
            assert_eq!(neg.len(), 5 * nonempty);
            let mut per_bin = [0usize; 4];
            for &pair in &neg {
                per_bin[bin(dist(pair))] += 1;
                *freq.entry(pair).or_default() += 1;
            }
            for b in 0..4 {
                assert_eq!(
                    per_bin[b],
                    if members[b] > 0 { 5 } else { 0 },
                    "{per_bin:?}"
                );
            }
        }
        // Within a bin every member is equally likely: chi-square over the members of each bin.
        for b in 0..4 {
            let in_bin: Vec<_> = all.iter().filter(|&&p| bin(dist(p)) == b).collect();
            if in_bin.len() < 2 {
                continue;
            }
            let expected = (rounds * 5) as f64 / in_bin.len() as f64;
            let chi2: f64 = in_bin
                .iter()
                .map(|p| {
                    let o = *freq.get(p).unwrap_or(&0) as f64;
                    (o - expected).powi(2) / expected
                })
                .sum();
            // 99.9% quantile of chi-square with df = members − 1 is below 3.3·df + 11.
            let df = (in_bin.len() - 1) as f64;
            assert!(chi2 < 3.3 * df + 11.0, "bin {b}: chi2 {chi2} with df {df}");
        }
    }

    #[test]
    fn refuses_zero_bins() {
        let err = UniformHistogramMinerConfig::new()
            .with_num_bins(0)
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_bins"), "{err}");
    }
}
