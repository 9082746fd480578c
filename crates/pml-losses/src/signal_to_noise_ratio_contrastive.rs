use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{LossInput, LossTerms, MetricLoss, PmlError};
use pml_distances::{DistanceConfig, SNRDistanceConfig};
use pml_reducers::ReducerConfig;

use crate::{ContrastiveLoss, ContrastiveLossConfig, regularizers::RegularizerConfig};

/// Configuration of [`SignalToNoiseRatioContrastiveLoss`], with PML's argument names and
/// defaults.
#[derive(Config, Debug)]
pub struct SignalToNoiseRatioContrastiveLossConfig {
    /// Positive pairs with an SNR distance above this are penalized.
    #[config(default = 0.0)]
    pub pos_margin: f64,
    /// Negative pairs with an SNR distance below this are penalized.
    #[config(default = 1.0)]
    pub neg_margin: f64,
    /// The distance: must be `SNRDistance`, as in PML.
    #[config(default = "DistanceConfig::Snr(SNRDistanceConfig::new())")]
    pub distance: DistanceConfig,
    /// The reducer of both terms (PML's default: `AvgNonZeroReducer`).
    #[config(default = "ReducerConfig::avg_non_zero()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl SignalToNoiseRatioContrastiveLossConfig {
    /// Builds the loss, refusing distances other than `SNRDistance` (as PML does).
    pub fn try_init(&self) -> Result<SignalToNoiseRatioContrastiveLoss, PmlError> {
        if !matches!(self.distance, DistanceConfig::Snr(_)) {
            return Err(PmlError::Unsupported(format!(
                "SignalToNoiseRatioContrastiveLoss requires the distance metric to be SNRDistance, got {}",
                self.distance.pml_name()
            )));
        }
        let inner = ContrastiveLossConfig {
            pos_margin: self.pos_margin,
            neg_margin: self.neg_margin,
            distance: self.distance.clone(),
            reducer: self.reducer.clone(),
            embedding_regularizer: self.embedding_regularizer.clone(),
            embedding_reg_weight: self.embedding_reg_weight,
        };
        Ok(SignalToNoiseRatioContrastiveLoss {
            inner: inner.try_init()?,
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> SignalToNoiseRatioContrastiveLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The contrastive loss on signal-to-noise-ratio distances (Yuan et al., "Signal-To-Noise
/// Ratio: A Robust Distance Metric for Deep Metric Learning", CVPR 2019; PML's
/// `SignalToNoiseRatioContrastiveLoss`): [`ContrastiveLoss`] with
/// `d(x, y) = Var(x − y) / Var(x)`:
///
/// `L_pos = [d(a, p) − m_pos]₊`, `L_neg = [m_neg − d(a, n)]₊`.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct SignalToNoiseRatioContrastiveLoss {
    inner: ContrastiveLoss,
}

impl<B: Backend> MetricLoss<B> for SignalToNoiseRatioContrastiveLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        self.inner.forward_terms(input)
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.inner.reduce(terms, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Int;

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Raw SNR distances: x0 = [1, 2, 4], x1 = [0, 1, 1] share a label:
        // d01 = Var([1, 1, 3]) / Var([1, 2, 4]) = 4/7, d10 = Var([−1, −1, −3]) / Var([0, 1, 1]) = 4.
        // pos_margin 0: both positive pairs lose their distance; AvgNonZero mean = (4/7 + 4) / 2.
        let x = Tensor::<B, 2>::from_floats([[1.0, 2.0, 4.0], [0.0, 1.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0], &device);
        let loss = SignalToNoiseRatioContrastiveLossConfig::new()
            .with_distance(DistanceConfig::Snr(
                SNRDistanceConfig::new().with_normalize_embeddings(false),
            ))
            .init();
        let got = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        let want = (4.0 / 7.0 + 4.0) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn refuses_other_distances() {
        let err = SignalToNoiseRatioContrastiveLossConfig::new()
            .with_distance(DistanceConfig::lp())
            .try_init()
            .unwrap_err();
        assert!(err.to_string().contains("SNRDistance"), "{err}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = SignalToNoiseRatioContrastiveLossConfig::new().init();
        crate::gradcheck::check_gradients(&loss, &[0, 0, 1, 1, 2, 2, 0, 1], 5, 20);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(
            &SignalToNoiseRatioContrastiveLossConfig::new().init(),
            21,
        );
    }
}
