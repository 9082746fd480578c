use burn::{
    config::Config,
    module::Module,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{LossInput, LossTerms, MetricLoss, PmlError};

use crate::{BaseLoss, LossConfig};

/// The losses PML's `SelfSupervisedLoss` accepts.
const SUPPORTED: [&str; 13] = [
    "AngularLoss",
    "CircleLoss",
    "ContrastiveLoss",
    "GeneralizedLiftedStructureLoss",
    "IntraPairVarianceLoss",
    "LiftedStructureLoss",
    "MultiSimilarityLoss",
    "NTXentLoss",
    "SignalToNoiseRatioContrastiveLoss",
    "SupConLoss",
    "TripletMarginLoss",
    "NCALoss",
    "TupletMarginLoss",
];

/// Configuration of [`SelfSupervisedLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct SelfSupervisedLossConfig {
    /// The wrapped loss (one of PML's supported list).
    pub loss: Box<LossConfig>,
    /// Compare both ways (`embeddings` and `ref_emb` concatenated into one labelled batch)
    /// instead of `embeddings` against `ref_emb` only.
    #[config(default = true)]
    pub symmetric: bool,
}

impl SelfSupervisedLossConfig {
    /// Builds the wrapper on `device`, refusing losses PML does not support in it.
    pub fn try_init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<SelfSupervisedLoss<B>, PmlError> {
        let name = self.loss.pml_name();
        if !SUPPORTED.contains(&name) {
            return Err(PmlError::Unsupported(format!(
                "SelfSupervisedLoss not supported for {name}"
            )));
        }
        Ok(SelfSupervisedLoss {
            loss: vec![self.loss.try_init_base(device)?],
            symmetric: self.symmetric,
        })
    }

    /// Builds the wrapper on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SelfSupervisedLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A loss on pairs of views (PML's `SelfSupervisedLoss`): `embeddings[i]` and `ref_emb[i]` are
/// two augmentations of the same input, so they get the label `i`. Symmetric: the wrapped loss
/// sees the `2n` rows of both views with labels `[0..n, 0..n]`; otherwise it sees `embeddings`
/// against the reference `ref_emb`, both labelled `0..n`.
///
/// Input: `LossInput::unlabeled(embeddings).with_unlabeled_reference(ref_emb)`.
///
/// # Shapes
/// - embeddings `[n, d]`, ref_emb `[n, d]`
/// - output `[1]`
///
/// # Panics
/// Without `ref_emb`, or when its shape differs from the embeddings'.
#[derive(Module, Debug)]
pub struct SelfSupervisedLoss<B: Backend> {
    /// The wrapped loss, as a one-element `Vec`: Burn 0.21 implements `Module` for `Vec` but not
    /// for `Box`, and the recursion through [`AnyLoss`] needs one of them.
    loss: Vec<BaseLoss<B>>,
    symmetric: bool,
}

impl<B: Backend> SelfSupervisedLoss<B> {
    /// The inputs the wrapped loss sees.
    fn inner_input(&self, input: &LossInput<B>) -> LossInput<B> {
        let reference = input.reference.as_ref().unwrap_or_else(|| {
            panic!("SelfSupervisedLoss needs ref_emb (the second view of the batch)")
        });
        let (emb, ref_emb) = (input.embeddings.clone(), reference.embeddings.clone());
        assert_eq!(
            emb.dims(),
            ref_emb.dims(),
            "SelfSupervisedLoss: embeddings shape {:?} and ref_emb shape {:?} differ",
            emb.dims(),
            ref_emb.dims()
        );
        let n = emb.dims()[0];
        let labels = Tensor::<B, 1, Int>::arange(0..n as i64, &emb.device());
        if self.symmetric {
            LossInput::new(
                Tensor::cat(vec![emb, ref_emb], 0),
                Tensor::cat(vec![labels.clone(), labels], 0),
            )
        } else {
            LossInput::new(emb, labels.clone()).with_reference(ref_emb, labels)
        }
    }
}

impl<B: Backend> MetricLoss<B> for SelfSupervisedLoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        self.loss[0].forward_terms(&self.inner_input(input))
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.loss[0].reduce(terms, &self.inner_input(input))
    }

    fn forward(&self, input: LossInput<B>) -> Tensor<B, 1> {
        self.loss[0].forward(self.inner_input(&input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContrastiveLossConfig, TripletMarginLossConfig};
    use burn::backend::NdArray;

    #[test]
    fn symmetric_equals_the_loss_on_both_views_with_position_labels() {
        let device = Default::default();
        let a = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], &device);
        let b = Tensor::<NdArray, 2>::from_floats([[0.9, 0.1], [0.2, 1.0], [1.0, 0.8]], &device);
        let inner = LossConfig::TripletMargin(TripletMarginLossConfig::new().with_margin(0.5));
        let wrapped =
            SelfSupervisedLossConfig::new(Box::new(inner.clone())).init::<NdArray>(&device);
        let got = wrapped
            .forward(LossInput::unlabeled(a.clone()).with_unlabeled_reference(b.clone()))
            .into_scalar();
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 1, 2, 0, 1, 2], &device);
        let want = inner
            .init::<NdArray>(&device)
            .forward(LossInput::new(Tensor::cat(vec![a, b], 0), labels))
            .into_scalar();
        assert_eq!(got, want);
    }

    #[test]
    fn refuses_unsupported_losses() {
        let inner = LossConfig::Margin(crate::MarginLossConfig::new());
        let err = SelfSupervisedLossConfig::new(Box::new(inner))
            .try_init::<NdArray>(&Default::default())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("SelfSupervisedLoss not supported for MarginLoss"),
            "{err}"
        );
        let ok = LossConfig::Contrastive(ContrastiveLossConfig::new());
        assert!(
            SelfSupervisedLossConfig::new(Box::new(ok))
                .try_init::<NdArray>(&Default::default())
                .is_ok()
        );
    }
}
