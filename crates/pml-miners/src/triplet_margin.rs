use burn::{
    config::Config,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{Distance, IndicesTuple, Miner, PmlError, Reference, tensor::gather_pairs};
use pml_distances::{AnyDistance, DistanceConfig};
use serde::{Deserialize, Serialize};

use crate::{
    MinerCounts,
    common::{Batch, LastCounts, require_finite, triplets_from_pairs},
};

/// Which triplets [`TripletMarginMiner`] returns (PML's `type_of_triplets`), with
/// `m = d(a, n) − d(a, p)` (`s(a, p) − s(a, n)` for similarities):
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypeOfTriplets {
    /// `"all"`: every triplet that violates the margin, `m ≤ margin`.
    #[default]
    All,
    /// `"hard"`: the negative is at least as close as the positive, `m ≤ 0`.
    Hard,
    /// `"semihard"`: the negative is farther than the positive but within the margin,
    /// `0 < m ≤ margin`.
    Semihard,
    /// `"easy"`: the triplets that satisfy the margin, `m > margin`.
    Easy,
}

/// Configuration of [`TripletMarginMiner`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct TripletMarginMinerConfig {
    /// The margin the triplets are measured against.
    #[config(default = 0.2)]
    pub margin: f64,
    /// `"all"`, `"hard"`, `"semihard"` or `"easy"`.
    #[config(default = "TypeOfTriplets::All")]
    pub type_of_triplets: TypeOfTriplets,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
}

impl TripletMarginMinerConfig {
    /// Builds the miner, refusing a non-finite `margin` or an invalid distance.
    pub fn try_init(&self) -> Result<TripletMarginMiner, PmlError> {
        require_finite("TripletMarginMiner", "margin", self.margin)?;
        self.distance.validate()?;
        Ok(TripletMarginMiner {
            margin: self.margin,
            type_of_triplets: self.type_of_triplets,
            distance: self.distance.init(),
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> TripletMarginMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Triplets chosen by their margin (PML's `TripletMarginMiner`): of every valid triplet
/// `(a, p, n)`, those whose margin `m = d(a, n) − d(a, p)` (`s(a, p) − s(a, n)` for
/// similarities) is of the requested [`TypeOfTriplets`]: `m ≤ margin` (all), `m ≤ 0` (hard),
/// `0 < m ≤ margin` (semihard) or `m > margin` (easy).
///
/// The triplets are evaluated as positive pairs × reference rows, in blocks of pairs, so memory
/// stays bounded (PML builds an `[n, m, m]` mask). Only the selected index lists leave the
/// device. The counts PML records are [`last_counts`](Self::last_counts).
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::Miner;
/// use pml_miners::{TripletMarginMinerConfig, TypeOfTriplets};
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]], &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1], &device);
/// let miner = TripletMarginMinerConfig::new().with_type_of_triplets(TypeOfTriplets::Hard).init();
/// let t = miner.mine(x, labels, None);
/// // Anchor 1 is closer to the negative 2 than to its positive 0.
/// assert_eq!(miner.last_counts().num_triplets, 1);
/// # let _ = t;
/// ```
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output: triplets `(a, p, n)`, each `[k]`
///
/// # Panics
/// If the labels' length differs from the batch's, or the reference has no labels.
#[derive(Clone, Debug)]
pub struct TripletMarginMiner {
    margin: f64,
    type_of_triplets: TypeOfTriplets,
    distance: AnyDistance,
    counts: LastCounts,
}

impl TripletMarginMiner {
    /// The counts of the last call (PML's `num_triplets`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }
}

impl<B: Backend> Miner<B> for TripletMarginMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let batch = Batch::new("TripletMarginMiner", embeddings, labels, reference);
        let mat = batch.matrix(&self.distance);
        let [a1, p] = batch.positive_pairs();
        let ap = gather_pairs(mat.clone(), a1.clone(), p.clone());
        let m = batch.ref_len();
        let margin = self.margin;
        let tuple = triplets_from_pairs(a1, p, m, |a, _, range| {
            let c = range.len();
            let ap = ap.clone().slice(range).reshape([c, 1]).expand([c, m]);
            let an = mat.clone().select(0, a.clone());
            let tm = Distance::<B>::margin(&self.distance, an, ap);
            let keep = match self.type_of_triplets {
                TypeOfTriplets::Easy => tm.greater_elem(margin),
                TypeOfTriplets::All => tm.lower_equal_elem(margin),
                TypeOfTriplets::Hard => tm
                    .clone()
                    .lower_equal_elem(margin)
                    .bool_and(tm.lower_equal_elem(0.0)),
                TypeOfTriplets::Semihard => tm
                    .clone()
                    .lower_equal_elem(margin)
                    .bool_and(tm.greater_elem(0.0)),
            };
            keep.bool_and(batch.negatives_of(a))
        });
        self.counts.record(&tuple);
        tuple
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn hand_checked_types_of_triplets() {
        // 1-D raw distances: a=0 at 0.0, p=1 at 0.3, negatives 2 at 0.2 and 3 at 0.45, 4 at 1.0
        // (singletons, so they are never anchors).
        let x = [[0.0], [0.3], [0.2], [0.45], [1.0]];
        let labels = [0, 0, 1, 2, 3];
        let mine = |t: TypeOfTriplets| {
            let miner = TripletMarginMinerConfig::new()
                .with_margin(0.2)
                .with_type_of_triplets(t)
                .with_distance(raw_lp())
                .init();
            let out = triplet_set(miner.mine(floats(&x), ints(&labels), None));
            assert_eq!(miner.last_counts().num_triplets, out.len());
            out
        };
        // Anchor 0 (p=1, d=0.3): m = d(a,n) − 0.3 → n2: −0.1, n3: 0.15, n4: 0.7.
        // Anchor 1 (p=0, d=0.3): n2: 0.1 − 0.3 = −0.2, n3: 0.15 − 0.3 = −0.15, n4: 0.7 − 0.3 = 0.4.
        assert_eq!(
            mine(TypeOfTriplets::Hard),
            set3(&[(0, 1, 2), (1, 0, 2), (1, 0, 3)])
        );
        assert_eq!(mine(TypeOfTriplets::Semihard), set3(&[(0, 1, 3)]));
        assert_eq!(
            mine(TypeOfTriplets::All),
            set3(&[(0, 1, 2), (0, 1, 3), (1, 0, 2), (1, 0, 3)])
        );
        assert_eq!(mine(TypeOfTriplets::Easy), set3(&[(0, 1, 4), (1, 0, 4)]));
    }

    #[test]
    fn type_of_triplets_parses_pml_strings_and_refuses_others() {
        let c: TypeOfTriplets = serde_json::from_str("\"semihard\"").unwrap();
        assert_eq!(c, TypeOfTriplets::Semihard);
        assert!(serde_json::from_str::<TypeOfTriplets>("\"medium\"").is_err());
        assert!(
            TripletMarginMinerConfig::new()
                .with_margin(f64::NAN)
                .try_init()
                .is_err()
        );
    }
}
