use burn::{
    config::Config,
    module::Module,
    tensor::{Bool, Int, Tensor, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType, labels::pairwise_equal,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::{
        cross_entropy_rows, finite, refuse_indices_tuple, refuse_reference, require_cosine,
        require_labels,
    },
    regularizers::RegularizerConfig,
};

const NAME: &str = "InstanceLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::Element)];

/// Configuration of [`InstanceLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct InstanceLossConfig {
    /// Scale of the cosine similarities (the softmax's inverse temperature).
    #[config(default = 64.0)]
    pub gamma: f64,
    /// The similarity: must be `CosineSimilarity` (PML's default and only choice).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `MeanReducer`).
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl InstanceLossConfig {
    /// Builds the loss, refusing a non-finite `gamma`, a distance other than
    /// `CosineSimilarity` (as PML's `assert_distance_type`) and invalid slots.
    pub fn try_init(&self) -> Result<InstanceLoss, PmlError> {
        finite(NAME, "gamma", self.gamma)?;
        require_cosine(&self.distance, NAME)?;
        Ok(InstanceLoss {
            gamma: self.gamma,
            slots: LossSlots::build(
                NAME,
                &self.distance,
                &self.reducer,
                self.embedding_regularizer.as_ref(),
                self.embedding_reg_weight,
                &TERMS,
            )?,
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> InstanceLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The instance loss (Zheng, Zheng, Garrett, Yang, Xu & Shen, "Dual-Path Convolutional
/// Image-Text Embeddings with Instance Loss", ACM TOMM 2020; PML's `InstanceLoss`).
///
/// With the scaled cosine similarities `S = γ · cos(x_i, x_j)` (`[n, n]`) used as logits and
/// each sample's target `t_i` = the rank of its label among the batch's distinct labels (PML's
/// `torch.unique(labels, return_inverse=True)`), each sample loses the cross entropy
///
/// `L_i = log Σ_j exp(S_ij) − S_{i, t_i}`,
///
/// term `loss`, element reduction (mean by default). As in PML, the target indexes a column of
/// the similarity matrix, i.e. a batch position, not a class.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels, with an indices tuple or
/// with a reference set (neither is supported, as in PML).
#[derive(Module, Clone, Debug)]
pub struct InstanceLoss {
    gamma: f64,
    slots: LossSlots,
}

/// `inverse[i]` = the rank of `labels[i]` among the distinct labels (PyTorch's
/// `torch.unique(labels, return_inverse=True)[1]`), on the device.
fn unique_inverse<B: Backend>(labels: &Tensor<B, 1, Int>) -> Tensor<B, 1, Int> {
    let n = labels.dims()[0];
    let device = labels.device();
    // first[j]: no earlier k < j has the same label (`triu_mask` is true below the diagonal).
    let earlier = Tensor::<B, 2, Bool>::triu_mask([n, n], 0, &device);
    let repeated = pairwise_equal(labels, labels)
        .bool_and(earlier)
        .any_dim(1)
        .reshape([n]);
    let first = repeated.bool_not().reshape([1, n]).expand([n, n]);
    let row = labels.clone().reshape([n, 1]).expand([n, n]);
    let col = labels.clone().reshape([1, n]).expand([n, n]);
    col.lower(row).bool_and(first).int().sum_dim(1).reshape([n])
}

impl<B: Backend> MetricLoss<B> for InstanceLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = require_labels(input, NAME);
        refuse_indices_tuple(input, NAME);
        refuse_reference(input, NAME);
        let n = input.embeddings.dims()[0];
        let logits = self.slots.distance_matrix(input).mul_scalar(self.gamma);
        let losses = cross_entropy_rows(logits, unique_inverse(&labels));
        let indices = Tensor::<B, 1, Int>::arange(0..n as i64, &input.embeddings.device());
        let terms = LossTerms::new().with(LossTerm::element("loss", losses, indices));
        self.slots.with_regularization(terms, input)
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.slots.reduce(&terms, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use pml_core::tensor::{int_tensor, int_vec};

    type B = Autodiff<NdArray>;

    #[test]
    fn unique_inverse_ranks_the_labels() {
        let device = Default::default();
        let labels = int_tensor::<NdArray>(&[7, 3, 7, 9, 3, 0], &device);
        assert_eq!(int_vec(unique_inverse(&labels)), vec![2, 1, 2, 3, 1, 0]);
    }

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Orthogonal unit vectors, labels 5, 2: targets 1, 0. S = γ·I with γ = 1:
        // L_0 = log(e + 1) − 0, L_1 = log(e + 1) − 0.
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [0.0, 2.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([5, 2], &device);
        let loss = InstanceLossConfig::new()
            .with_gamma(1.0)
            .init()
            .forward(LossInput::new(x, labels))
            .into_scalar() as f64;
        let want = (1f64.exp() + 1.0).ln();
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    fn other_distances_are_refused() {
        let err = InstanceLossConfig::new()
            .with_distance(DistanceConfig::lp())
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("requires the distance metric to be CosineSimilarity"),
            "{err}"
        );
    }

    #[test]
    fn invariant_to_permuting_the_batch_outside_the_target_columns() {
        // PML's target of a sample is a column of the similarity matrix (the rank of its label
        // among the U distinct labels), i.e. a batch position: permuting the batch keeps the
        // loss exactly when the first U positions stay in place. Shuffle the others.
        let labels = [2, 0, 1, 0, 2, 1, 1, 0, 2];
        let mut perm = crate::proptests::shuffled(6, 5);
        perm.iter_mut().for_each(|p| *p += 3);
        let perm: Vec<usize> = [0, 1, 2].into_iter().chain(perm).collect();
        assert_ne!(perm, (0..9).collect::<Vec<_>>());
        let loss = InstanceLossConfig::new().with_gamma(4.0).init();
        crate::proptests::check_permutation(&loss, &labels, &perm);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        let config = InstanceLossConfig::new().with_gamma(3.0);
        crate::gradcheck::check_gradients(&config.init(), &labels, 5, 1);
    }
}
