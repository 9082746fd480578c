use burn::{
    config::Config,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{Distance, IndicesTuple, Miner, PmlError, Reference, tensor::gather_pairs};
use pml_distances::{DistanceConfig, LpDistance, LpDistanceConfig};

use crate::{
    MinerCounts,
    common::{Batch, LastCounts, require_finite, require_normalized_l2, triplets_from_pairs},
};

/// Configuration of [`AngularMiner`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct AngularMinerConfig {
    /// The threshold angle, in degrees.
    #[config(default = 20.0)]
    pub angle: f64,
    /// The distance: PML requires `LpDistance(p=2, power=1, normalize_embeddings=True)`, its
    /// default.
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
}

impl AngularMinerConfig {
    /// Builds the miner, refusing a non-finite `angle` or any distance other than
    /// `LpDistance(p=2, power=1, normalize_embeddings=True)` (as PML's
    /// `assert_distance_type`).
    pub fn try_init(&self) -> Result<AngularMiner, PmlError> {
        require_finite("AngularMiner", "angle", self.angle)?;
        require_normalized_l2("AngularMiner", &self.distance)?;
        Ok(AngularMiner {
            angle: self.angle.to_radians(),
            euclidean: LpDistanceConfig::new()
                .with_normalize_embeddings(false)
                .init(),
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> AngularMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Triplets whose angle at the negative exceeds a threshold (Wang et al., "Deep Metric Learning
/// with Angular Loss", ICCV 2017; PML's `AngularMiner`).
///
/// For every valid triplet `(a, p, n)`, with the center `c = (a + p) / 2` and `‖·‖` the
/// Euclidean norm: `θ = atan(‖a − p‖ / (2 · ‖n − c‖))`; the triplet is returned when
/// `θ > angle`.
///
/// As in PML, whose `pairwise_distance` does not normalize, the distances are measured
/// between the raw embeddings, although the distance slot must be the normalized
/// `LpDistance` (PML's check, kept here). PyTorch's `pairwise_distance` also adds `1e-6` to
/// each difference; this port does not, which can only move triplets whose angle is within
/// about `1e-6` of the threshold.
///
/// The triplets are evaluated as positive pairs × reference rows, in blocks of pairs (one
/// matrix product of the centers with the reference per block), so memory stays bounded; only
/// the selected index lists leave the device. The counts PML records are
/// [`last_counts`](Self::last_counts).
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::Miner;
/// use pml_miners::AngularMinerConfig;
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, -1.0]], &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 2], &device);
/// let miner = AngularMinerConfig::new().with_angle(40.0).init();
/// let t = miner.mine(x, labels, None);
/// // The negative between the pair sees it under a wide angle; the opposite one does not.
/// assert_eq!(miner.last_counts().num_triplets, 2);
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
pub struct AngularMiner {
    /// In radians.
    angle: f64,
    /// Euclidean distance between raw embeddings (PML's `LpDistance.pairwise_distance`).
    euclidean: LpDistance,
    counts: LastCounts,
}

impl AngularMiner {
    /// The counts of the last call (PML's `num_triplets`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }
}

impl<B: Backend> Miner<B> for AngularMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let batch = Batch::new("AngularMiner", embeddings, labels, reference);
        let mat = self
            .euclidean
            .forward(batch.embeddings.clone(), batch.ref_emb.clone());
        let [a1, p] = batch.positive_pairs();
        let ap = gather_pairs(mat, a1.clone(), p.clone());
        let reference = batch.reference();
        let m = batch.ref_len();
        let tuple = triplets_from_pairs(a1, p, m, |a, pos, range| {
            let c = range.len();
            let centers = (batch.embeddings.clone().select(0, a.clone())
                + reference.clone().select(0, pos))
            .div_scalar(2.0);
            let nc = self.euclidean.forward(centers, Some(reference.clone()));
            let ap = ap.clone().slice(range).reshape([c, 1]).expand([c, m]);
            let angles = (ap / nc.mul_scalar(2.0)).atan();
            angles
                .greater_elem(self.angle)
                .bool_and(batch.negatives_of(a))
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
    fn hand_checked_angles() {
        // a = (1, 0), p = (0, 1): ‖a − p‖ = √2, c = (0.5, 0.5). n1 = (1, 1): ‖n1 − c‖ = √2/2
        // → θ = atan(1) = 45°. n2 = (−1, −1): ‖n2 − c‖ = 3√2/2 → θ = atan(1/3) ≈ 18.4°.
        let x = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, -1.0]];
        let labels = [0, 0, 1, 2];
        let mine = |angle: f64| {
            let miner = AngularMinerConfig::new().with_angle(angle).init();
            triplet_set(miner.mine(floats2(&x), ints(&labels), None))
        };
        assert_eq!(mine(40.0), set3(&[(0, 1, 2), (1, 0, 2)]));
        assert_eq!(
            mine(18.0),
            set3(&[(0, 1, 2), (1, 0, 2), (0, 1, 3), (1, 0, 3)])
        );
    }

    #[test]
    fn refuses_other_distances() {
        let err = AngularMinerConfig::new()
            .with_distance(DistanceConfig::cosine())
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(err.contains("AngularMiner requires LpDistance"), "{err}");
        assert!(
            AngularMinerConfig::new()
                .with_distance(raw_lp())
                .try_init()
                .is_err()
        );
    }
}
