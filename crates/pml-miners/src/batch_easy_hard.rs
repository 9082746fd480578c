use burn::{
    config::Config,
    tensor::{Bool, Int, Tensor, backend::Backend},
};
use pml_core::{
    Distance, IndicesTuple, Miner, PmlError, Reference,
    tensor::{argwhere_1d, argwhere_2d, is_nan},
};
use pml_distances::{AnyDistance, DistanceConfig};
use serde::{Deserialize, Serialize};

use crate::{
    MinerCounts,
    common::{Batch, LastCounts},
};

/// How [`BatchEasyHardMiner`] picks one positive or one negative per anchor (PML's
/// `pos_strategy` / `neg_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchMiningStrategy {
    /// `"easy"`: the closest positive, or the farthest negative.
    Easy,
    /// `"semihard"`: the hardest positive that is still closer than the chosen negative, or the
    /// hardest negative that is still farther than the chosen positive.
    Semihard,
    /// `"hard"`: the farthest positive, or the closest negative.
    Hard,
    /// `"all"`: every positive (or negative) pair.
    All,
}

impl BatchMiningStrategy {
    fn pml_name(self) -> &'static str {
        match self {
            Self::Easy => "easy",
            Self::Semihard => "semihard",
            Self::Hard => "hard",
            Self::All => "all",
        }
    }
}

/// Configuration of [`BatchEasyHardMiner`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct BatchEasyHardMinerConfig {
    /// How the positive of each anchor is chosen.
    #[config(default = "BatchMiningStrategy::Easy")]
    pub pos_strategy: BatchMiningStrategy,
    /// How the negative of each anchor is chosen.
    #[config(default = "BatchMiningStrategy::Semihard")]
    pub neg_strategy: BatchMiningStrategy,
    /// Only positive pairs whose distance lies in `[low, high]` are candidates.
    pub allowed_pos_range: Option<[f64; 2]>,
    /// Only negative pairs whose distance lies in `[low, high]` are candidates.
    pub allowed_neg_range: Option<[f64; 2]>,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
}

fn check_range(argument: &str, range: Option<[f64; 2]>) -> Result<(), PmlError> {
    match range {
        Some([lo, hi]) if lo.is_nan() || hi.is_nan() || lo > hi => Err(PmlError::invalid_argument(
            argument,
            format!("[{lo}, {hi}]"),
            "BatchEasyHardMiner: must be [low, high] with low <= high",
        )),
        _ => Ok(()),
    }
}

impl BatchEasyHardMinerConfig {
    /// Builds the miner, refusing the combinations PML refuses (both strategies `"semihard"`,
    /// or `"semihard"` with `"all"`), inverted ranges and invalid distances.
    pub fn try_init(&self) -> Result<BatchEasyHardMiner, PmlError> {
        use BatchMiningStrategy::*;
        let (pos, neg) = (self.pos_strategy, self.neg_strategy);
        let refuse = |reason: &str| {
            Err(PmlError::invalid_argument(
                "pos_strategy/neg_strategy",
                format!("{}/{}", pos.pml_name(), neg.pml_name()),
                format!("BatchEasyHardMiner: {reason}"),
            ))
        };
        if pos == Semihard && neg == Semihard {
            return refuse("pos_strategy and neg_strategy cannot both be \"semihard\"");
        }
        if (pos == All && neg == Semihard) || (pos == Semihard && neg == All) {
            return refuse("\"semihard\" cannot be used in combination with \"all\"");
        }
        check_range("allowed_pos_range", self.allowed_pos_range)?;
        check_range("allowed_neg_range", self.allowed_neg_range)?;
        self.distance.validate()?;
        Ok(BatchEasyHardMiner {
            pos_strategy: pos,
            neg_strategy: neg,
            allowed_pos_range: self.allowed_pos_range,
            allowed_neg_range: self.allowed_neg_range,
            distance: self.distance.init(),
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> BatchEasyHardMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Easy, semihard, hard or all positives and negatives per anchor (Xuan et al., "Improved
/// Embeddings with Easy Positive Triplet Mining", WACV 2020; PML's `BatchEasyHardMiner`).
///
/// For every anchor, one positive and one negative are chosen among the candidates (pairs of
/// the right kind, inside `allowed_pos_range` / `allowed_neg_range`):
/// - positive: `easy` = closest, `hard` = farthest, `semihard` = farthest among those closer
///   than the chosen negative;
/// - negative: `easy` = farthest, `hard` = closest, `semihard` = closest among those farther
///   than the chosen positive;
/// - `all`: every candidate pair of that kind.
///
/// ("closer" is in the distance's sense: larger similarity for inverted distances.) Anchors
/// that lack a positive or a negative are dropped when neither strategy is `all`. The output is
/// pairs `(a, p, a, n)`, with one positive and one negative per kept anchor, or every pair on
/// the `all` side. PML refuses both strategies `semihard` and `semihard` with `all`, and so
/// does [`BatchEasyHardMinerConfig::try_init`].
///
/// Row extrema over masked distance matrices: no loops over pairs, and only the kept anchor
/// list leaves the device. The counts PML records are [`last_counts`](Self::last_counts).
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::Miner;
/// use pml_miners::{BatchEasyHardMinerConfig, BatchMiningStrategy};
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]], &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1], &device);
/// let miner = BatchEasyHardMinerConfig::new()
///     .with_pos_strategy(BatchMiningStrategy::Hard)
///     .with_neg_strategy(BatchMiningStrategy::Hard)
///     .init();
/// let pairs = miner.mine(x, labels, None);
/// assert_eq!(pairs.num_pos_pairs(), 4);
/// ```
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output: pairs `(a1, p, a2, n)`
///
/// # Panics
/// If the labels' length differs from the batch's, or the reference has no labels.
#[derive(Clone, Debug)]
pub struct BatchEasyHardMiner {
    pos_strategy: BatchMiningStrategy,
    neg_strategy: BatchMiningStrategy,
    allowed_pos_range: Option<[f64; 2]>,
    allowed_neg_range: Option<[f64; 2]>,
    distance: AnyDistance,
    counts: LastCounts,
}

#[derive(Clone, Copy)]
enum Extreme {
    Min,
    Max,
}

/// PML's `get_x_per_row`: the extreme candidate of each row.
struct PerRow<B: Backend> {
    /// `[n, 1]`: the extreme value (±∞ for rows without candidates).
    values: Tensor<B, 2>,
    /// `[n]`: its column.
    indices: Tensor<B, 1, Int>,
    /// `[n]`: whether the row had a candidate.
    keep: Tensor<B, 1, Bool>,
}

fn per_row<B: Backend>(
    mat: &Tensor<B, 2>,
    candidates: Tensor<B, 2, Bool>,
    extreme: Extreme,
    range: Option<[f64; 2]>,
    semihard_thresholds: Option<&Tensor<B, 2>>,
) -> PerRow<B> {
    let [n, m] = mat.dims();
    // A NaN distance (from NaN embeddings) is never a candidate: comparisons with NaN would pick
    // a masked entry, a tuple the labels forbid.
    let mut valid = candidates.bool_and(is_nan(mat.clone()).bool_not());
    if let Some(t) = semihard_thresholds {
        let t = t.clone().expand([n, m]);
        let excluded = match extreme {
            Extreme::Min => mat.clone().lower_equal(t),
            Extreme::Max => mat.clone().greater_equal(t),
        };
        valid = valid.bool_and(excluded.bool_not());
    }
    if let Some([lo, hi]) = range {
        let outside = mat
            .clone()
            .greater_elem(hi)
            .bool_or(mat.clone().lower_elem(lo));
        valid = valid.bool_and(outside.bool_not());
    }
    let keep = valid.clone().any_dim(1).reshape([n]);
    let (fill, masked) = match extreme {
        Extreme::Min => (f64::INFINITY, valid.bool_not()),
        Extreme::Max => (f64::NEG_INFINITY, valid.bool_not()),
    };
    let filled = mat.clone().mask_fill(masked, fill);
    let (values, indices) = match extreme {
        Extreme::Min => filled.min_dim_with_indices(1),
        Extreme::Max => filled.max_dim_with_indices(1),
    };
    PerRow {
        values,
        indices: indices.reshape([n]),
        keep,
    }
}

impl BatchEasyHardMiner {
    /// The counts of the last call (PML's `num_pos_pairs`, `num_neg_pairs`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }

    pub(crate) fn mine_pairs<B: Backend>(&self, batch: &Batch<B>) -> [Tensor<B, 1, Int>; 4] {
        use BatchMiningStrategy::*;
        let mat = batch.matrix(&self.distance);
        let (matches, diffs) = batch.masks();
        let inverted = Distance::<B>::is_inverted(&self.distance);
        // Hard (and semihard) positives are the farthest; hard negatives the closest.
        let far = if inverted { Extreme::Min } else { Extreme::Max };
        let near = if inverted { Extreme::Max } else { Extreme::Min };
        let pos_extreme = if self.pos_strategy == Easy { near } else { far };
        let neg_extreme = if self.neg_strategy == Easy { far } else { near };
        let positives = |thresholds: Option<&Tensor<B, 2>>| {
            per_row(
                &mat,
                matches.clone(),
                pos_extreme,
                self.allowed_pos_range,
                thresholds,
            )
        };
        let negatives = |thresholds: Option<&Tensor<B, 2>>| {
            per_row(
                &mat,
                diffs.clone(),
                neg_extreme,
                self.allowed_neg_range,
                thresholds,
            )
        };
        let (pos, neg) = (self.pos_strategy, self.neg_strategy);
        let (p_row, n_row) = if pos == Semihard && neg != All {
            let n_row = negatives(None);
            (Some(positives(Some(&n_row.values))), Some(n_row))
        } else if neg == Semihard && pos != All {
            let p_row = positives(None);
            let n_row = negatives(Some(&p_row.values));
            (Some(p_row), Some(n_row))
        } else {
            (
                (pos != All).then(|| positives(None)),
                (neg != All).then(|| negatives(None)),
            )
        };
        match (p_row, n_row) {
            (Some(p_row), Some(n_row)) => {
                let a = argwhere_1d(p_row.keep.bool_and(n_row.keep));
                let p = p_row.indices.select(0, a.clone());
                let n = n_row.indices.select(0, a.clone());
                [a.clone(), p, a, n]
            }
            (None, Some(n_row)) => {
                let [a1, p] = argwhere_2d(matches);
                let a2 = argwhere_1d(n_row.keep);
                let n = n_row.indices.select(0, a2.clone());
                [a1, p, a2, n]
            }
            (Some(p_row), None) => {
                let a1 = argwhere_1d(p_row.keep);
                let p = p_row.indices.select(0, a1.clone());
                let [a2, n] = argwhere_2d(diffs);
                [a1, p, a2, n]
            }
            (None, None) => {
                let [a1, p] = argwhere_2d(matches);
                let [a2, n] = argwhere_2d(diffs);
                [a1, p, a2, n]
            }
        }
    }
}

impl<B: Backend> Miner<B> for BatchEasyHardMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let batch = Batch::new("BatchEasyHardMiner", embeddings, labels, reference);
        let [a1, p, a2, n] = self.mine_pairs(&batch);
        let tuple = IndicesTuple::pairs(a1, p, a2, n);
        self.counts.record(&tuple);
        tuple
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use BatchMiningStrategy::*;

    fn miner(pos: BatchMiningStrategy, neg: BatchMiningStrategy) -> BatchEasyHardMinerConfig {
        BatchEasyHardMinerConfig::new()
            .with_pos_strategy(pos)
            .with_neg_strategy(neg)
            .with_distance(raw_lp())
    }

    // Anchor 0 at 0.0 with positives at 0.1, 0.4, 0.9 and negatives at 0.3, 0.6, 2.0; every
    // other point is a singleton label with no positive, so only anchors 0..=3 can be kept.
    const X: [[f32; 1]; 7] = [[0.0], [0.1], [0.4], [0.9], [0.3], [0.6], [2.0]];
    const LABELS: [i64; 7] = [0, 0, 0, 0, 1, 2, 3];

    fn anchor0(config: BatchEasyHardMinerConfig) -> (Pairs, Pairs) {
        let t = config.init().mine(floats(&X), ints(&LABELS), None);
        let (pos, neg) = pair_lists(t);
        (
            pos.into_iter().filter(|&(a, _)| a == 0).collect(),
            neg.into_iter().filter(|&(a, _)| a == 0).collect(),
        )
    }

    #[test]
    fn hand_checked_strategies_for_one_anchor() {
        assert_eq!(anchor0(miner(Easy, Hard)), (vec![(0, 1)], vec![(0, 4)]));
        assert_eq!(anchor0(miner(Hard, Easy)), (vec![(0, 3)], vec![(0, 6)]));
        // Semihard negative: closest negative farther than the easy positive (0.1) → 0.3.
        assert_eq!(anchor0(miner(Easy, Semihard)), (vec![(0, 1)], vec![(0, 4)]));
        // Semihard negative after the hard positive (0.9): closest beyond 0.9 → 2.0.
        assert_eq!(anchor0(miner(Hard, Semihard)), (vec![(0, 3)], vec![(0, 6)]));
        // Semihard positive before the hard negative (0.3): farthest below 0.3 → 0.1.
        assert_eq!(anchor0(miner(Semihard, Hard)), (vec![(0, 1)], vec![(0, 4)]));
        // Semihard positive before the easy negative (2.0): farthest below → 0.9.
        assert_eq!(anchor0(miner(Semihard, Easy)), (vec![(0, 3)], vec![(0, 6)]));
        let (pos, neg) = anchor0(miner(All, Hard));
        assert_eq!((pos.len(), neg), (3, vec![(0, 4)]));
        let (pos, neg) = anchor0(miner(Easy, All));
        assert_eq!((pos, neg.len()), (vec![(0, 1)], 3));
        let (pos, neg) = anchor0(miner(All, All));
        assert_eq!((pos.len(), neg.len()), (3, 3));
    }

    #[test]
    fn allowed_ranges_filter_candidates() {
        let c = miner(Hard, Hard)
            .with_allowed_pos_range(Some([0.0, 0.5]))
            .with_allowed_neg_range(Some([0.5, 1.0]));
        assert_eq!(anchor0(c), (vec![(0, 2)], vec![(0, 5)]));
    }

    #[test]
    fn a_similarity_mirrors_the_choices() {
        // Dot products with anchor 0 (= 1): positives 0.9 (easy) and 0.2 (hard), negatives 0.8
        // (hard) and -1 (easy).
        let x = [[1.0], [0.9], [0.2], [0.8], [-1.0]];
        let labels = [0, 0, 0, 1, 2];
        let c = BatchEasyHardMinerConfig::new()
            .with_pos_strategy(Hard)
            .with_neg_strategy(Hard)
            .with_distance(dot());
        let (pos, neg) = pair_lists(c.init().mine(floats(&x), ints(&labels), None));
        assert!(
            pos.contains(&(0, 2)) && neg.contains(&(0, 3)),
            "{pos:?} {neg:?}"
        );
    }

    #[test]
    fn pml_refusals() {
        for (p, n) in [(Semihard, Semihard), (All, Semihard), (Semihard, All)] {
            let err = miner(p, n).try_init().unwrap_err().to_string();
            assert!(err.contains("semihard"), "{err}");
        }
        let err = miner(Hard, Hard)
            .with_allowed_pos_range(Some([1.0, 0.0]))
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(err.contains("allowed_pos_range"), "{err}");
        let err = serde_json::from_str::<BatchMiningStrategy>("\"medium\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
