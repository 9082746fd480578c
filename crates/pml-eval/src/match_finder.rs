//! Deciding whether two embeddings match: PML's `MatchFinder`, and threshold calibration on
//! labelled pairs (as TensorFlow Similarity's `calibrate`; PML has none).

use burn::{
    config::Config,
    tensor::{Bool, Tensor, backend::Backend},
};
use pml_core::{PmlError, math::normalize_rows, tensor::float_vec};
use serde::{Deserialize, Serialize};

/// How a [`MatchFinder`] compares two embeddings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchDistance {
    /// Cosine similarity; a match when it is at least the threshold (PML's default,
    /// `CosineSimilarity()` with threshold 0.9).
    #[default]
    Cosine,
    /// Euclidean distance `‖x − y‖`; a match when it is at most the threshold.
    L2,
}

impl MatchDistance {
    /// `true` for similarities (larger = closer).
    pub fn is_similarity(self) -> bool {
        matches!(self, Self::Cosine)
    }

    /// Whether `score` passes `threshold`.
    pub fn passes(self, score: f64, threshold: f64) -> bool {
        if self.is_similarity() {
            score >= threshold
        } else {
            score <= threshold
        }
    }

    /// The score of every query row against every reference row, `[n, m]`.
    pub fn matrix<B: Backend>(self, query: Tensor<B, 2>, reference: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Self::Cosine => {
                normalize_rows(query, 2.0).matmul(normalize_rows(reference, 2.0).transpose())
            }
            Self::L2 => {
                let m = reference.dims()[0];
                let q_sq = query.clone().powi_scalar(2).sum_dim(1);
                let r_sq = reference.clone().powi_scalar(2).sum_dim(1).reshape([1, m]);
                (query.matmul(reference.transpose()).mul_scalar(-2.0) + q_sq + r_sq)
                    .clamp_min(0.0)
                    .sqrt()
            }
        }
    }

    /// The score of each row pair `(x_i, y_i)`, `[n]`.
    pub fn pairwise<B: Backend>(self, x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        match self {
            Self::Cosine => (normalize_rows(x, 2.0) * normalize_rows(y, 2.0))
                .sum_dim(1)
                .reshape([n]),
            Self::L2 => (x - y).powi_scalar(2).sum_dim(1).sqrt().reshape([n]),
        }
    }
}

/// Configuration of [`MatchFinder`].
#[derive(Config, Debug)]
pub struct MatchFinderConfig {
    /// How embeddings are compared.
    #[config(default = "MatchDistance::Cosine")]
    pub distance: MatchDistance,
    /// The match threshold (a minimum similarity or a maximum distance).
    #[config(default = 0.9)]
    pub threshold: f64,
}

impl MatchFinderConfig {
    /// Builds the match finder, or an error for a non-finite threshold.
    pub fn try_init(&self) -> Result<MatchFinder, PmlError> {
        if !self.threshold.is_finite() {
            return Err(PmlError::invalid_argument(
                "threshold",
                self.threshold,
                "must be finite",
            ));
        }
        Ok(MatchFinder {
            distance: self.distance,
            threshold: self.threshold,
        })
    }

    /// Builds the match finder.
    ///
    /// # Panics
    /// If the threshold is not finite.
    pub fn init(&self) -> MatchFinder {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// PML's `MatchFinder`: two embeddings match when their similarity reaches the threshold (or
/// their distance stays within it).
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use pml_eval::MatchFinderConfig;
///
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [1.0, 0.0]], &device);
/// let y = Tensor::<NdArray, 2>::from_floats([[2.0, 0.1], [0.0, 1.0]], &device);
/// let finder = MatchFinderConfig::new().init(); // cosine ≥ 0.9
/// let m: Vec<bool> = finder.is_match(x, y).into_data().iter::<bool>().collect();
/// assert_eq!(m, vec![true, false]);
/// ```
#[derive(Clone, Debug)]
pub struct MatchFinder {
    distance: MatchDistance,
    threshold: f64,
}

impl MatchFinder {
    /// The comparison.
    pub fn distance(&self) -> MatchDistance {
        self.distance
    }

    /// The current threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Replaces the threshold (for example by a [`Calibration`]'s).
    pub fn set_threshold(&mut self, threshold: f64) {
        self.threshold = threshold;
    }

    /// `[n, m]`: whether query `i` matches reference `j` (the queries themselves without a
    /// reference). This is a full matrix: use [`Knn`](crate::Knn) for large sets.
    ///
    /// # Panics
    /// If the widths differ.
    pub fn get_matching_pairs<B: Backend>(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 2, Bool> {
        let reference = reference.unwrap_or_else(|| query.clone());
        let scores = self.distance.matrix(query, reference);
        if self.distance.is_similarity() {
            scores.greater_equal_elem(self.threshold)
        } else {
            scores.lower_equal_elem(self.threshold)
        }
    }

    /// The matching `(query, reference)` index pairs, row-major (PML's `return_tuples=True`).
    pub fn get_matching_tuples<B: Backend>(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
    ) -> Vec<(usize, usize)> {
        let mask = self.get_matching_pairs(query, reference);
        let m = mask.dims()[1];
        mask.into_data()
            .iter::<bool>()
            .enumerate()
            .filter(|(_, b)| *b)
            .map(|(k, _)| (k / m, k % m))
            .collect()
    }

    /// `[n]`: whether `x_i` matches `y_i`.
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn is_match<B: Backend>(&self, x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 1, Bool> {
        let scores = self.distance.pairwise(x, y);
        if self.distance.is_similarity() {
            scores.greater_equal_elem(self.threshold)
        } else {
            scores.lower_equal_elem(self.threshold)
        }
    }

    /// Calibrates the threshold on labelled pairs `(x_i, y_i, is_match_i)` so that the matches
    /// reach `target_precision` (see [`calibrate_threshold`]) and sets it.
    pub fn calibrate<B: Backend>(
        &mut self,
        x: Tensor<B, 2>,
        y: Tensor<B, 2>,
        is_match: &[bool],
        target_precision: f64,
    ) -> Result<Calibration, PmlError> {
        let scores = float_vec(self.distance.pairwise(x, y));
        let c = calibrate_threshold(&scores, is_match, self.distance, target_precision)?;
        self.threshold = c.threshold;
        Ok(c)
    }
}

/// A calibrated threshold and what it achieves on the calibration pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// The threshold: the score of the loosest accepted pair.
    pub threshold: f64,
    /// Precision of the accepted pairs, `TP / (TP + FP)`.
    pub precision: f64,
    /// Recall, `TP / (number of matching pairs)`.
    pub recall: f64,
    /// Accepted matching pairs.
    pub true_positives: usize,
    /// Accepted non-matching pairs.
    pub false_positives: usize,
}

/// The loosest threshold whose accepted pairs reach `target_precision`, i.e. the one with the
/// highest recall among those that do (TensorFlow Similarity's `calibrate` with a precision
/// target).
///
/// The pairs are ranked from closest to farthest (`scores` are similarities or distances, as
/// `distance` says); a threshold at a pair's score accepts every pair at least as close, ties
/// included.
///
/// ```
/// use pml_eval::{MatchDistance, calibrate_threshold};
/// let sims = [0.95, 0.9, 0.8, 0.7, 0.6];
/// let same = [true, true, false, true, false];
/// let c = calibrate_threshold(&sims, &same, MatchDistance::Cosine, 0.75).unwrap();
/// // Accepting down to 0.7 gives 3 of 4 correct (precision 0.75, recall 1).
/// assert_eq!(c.threshold, 0.7);
/// assert_eq!(c.recall, 1.0);
/// ```
///
/// # Errors
/// Different lengths, no pairs, no matching pair, a target outside `(0, 1]`, or a target that
/// no threshold reaches.
pub fn calibrate_threshold(
    scores: &[f64],
    is_match: &[bool],
    distance: MatchDistance,
    target_precision: f64,
) -> Result<Calibration, PmlError> {
    if scores.len() != is_match.len() {
        return Err(PmlError::invalid_input(
            "is_match",
            format!("{} labels for {} pairs", is_match.len(), scores.len()),
        ));
    }
    if !(target_precision > 0.0 && target_precision <= 1.0) {
        return Err(PmlError::invalid_argument(
            "target_precision",
            target_precision,
            "must be in (0, 1]",
        ));
    }
    let positives = is_match.iter().filter(|&&m| m).count();
    if positives == 0 {
        return Err(PmlError::invalid_input(
            "is_match",
            "the calibration pairs contain no matching pair",
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).filter(|&i| !scores[i].is_nan()).collect();
    order.sort_by(|&a, &b| {
        let o = scores[a].total_cmp(&scores[b]);
        if distance.is_similarity() {
            o.reverse()
        } else {
            o
        }
    });
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best: Option<Calibration> = None;
    for (pos, &i) in order.iter().enumerate() {
        if is_match[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        // Only a group's last pair is a valid cut: ties are accepted together.
        if order.get(pos + 1).is_some_and(|&j| scores[j] == scores[i]) {
            continue;
        }
        let precision = tp as f64 / (tp + fp) as f64;
        if precision >= target_precision {
            best = Some(Calibration {
                threshold: scores[i],
                precision,
                recall: tp as f64 / positives as f64,
                true_positives: tp,
                false_positives: fp,
            });
        }
    }
    best.ok_or_else(|| {
        PmlError::invalid_input(
            "target_precision",
            format!("no threshold reaches precision {target_precision} on these pairs"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn matching_pairs_and_tuples() {
        let device = Default::default();
        let q = Tensor::<B, 2>::from_floats([[0.0, 0.0], [3.0, 4.0]], &device);
        let finder = MatchFinderConfig::new()
            .with_distance(MatchDistance::L2)
            .with_threshold(1.0)
            .init();
        assert_eq!(
            finder.get_matching_tuples(q.clone(), None),
            vec![(0, 0), (1, 1)]
        );
        let r = Tensor::<B, 2>::from_floats([[3.0, 4.5], [0.5, 0.0]], &device);
        assert_eq!(finder.get_matching_tuples(q, Some(r)), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn calibration_picks_the_loosest_threshold_and_handles_ties() {
        // Distances: the tie at 0.5 holds a match and a non-match: both are accepted together.
        let d = [0.1, 0.2, 0.5, 0.5, 0.9];
        let m = [true, true, true, false, true];
        let c = calibrate_threshold(&d, &m, MatchDistance::L2, 0.9).unwrap();
        assert_eq!(
            (c.threshold, c.true_positives, c.false_positives),
            (0.2, 2, 0)
        );
        let c = calibrate_threshold(&d, &m, MatchDistance::L2, 0.75).unwrap();
        assert_eq!((c.threshold, c.recall), (0.9, 1.0));
        assert!(calibrate_threshold(&[0.1], &[false], MatchDistance::L2, 0.5).is_err());
        assert!(calibrate_threshold(&[0.2, 0.1], &[false, true], MatchDistance::L2, 1.0).is_ok());
        assert!(calibrate_threshold(&[0.1, 0.1], &[false, true], MatchDistance::L2, 1.0).is_err());

        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], &device);
        let y = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], &device);
        let mut finder = MatchFinderConfig::new().init();
        let c = finder.calibrate(x, y, &[true, true, false], 1.0).unwrap();
        assert!((c.threshold - 0.5f64.sqrt()).abs() < 1e-6);
        assert!((finder.threshold() - c.threshold).abs() < 1e-12);
    }
}
