//! The slots every loss has (PML's `BaseMetricLossFunction`: distance, reducer, embedding
//! regularizer), and the weight regularizer of the losses with trainable weights (PML's
//! `WeightRegularizerMixin`), built and used in one place.

use burn::tensor::{Bool, Tensor, activation::relu, backend::Backend};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, PmlError, ReduceContext, Reducer, ReductionType,
    Regularizer,
    tensor::{mask_to_float, value_with_gradient},
};
use pml_distances::{AnyDistance, DistanceConfig};
use pml_reducers::{AnyReducer, ReducerConfig, TotalsReduction};

use crate::{
    generic_pair::PairMasks,
    regularizers::{AnyRegularizer, RegularizerConfig},
};

/// Name of the embedding-regularization term, as in PML.
pub(crate) const EMBEDDING_REG_LOSS: &str = "embedding_reg_loss";

/// Name of the weight-regularization term, as in PML.
pub(crate) const WEIGHT_REG_LOSS: &str = "weight_reg_loss";

/// A loss's distance, reducer and optional embedding regularizer.
#[derive(Clone, Debug)]
pub(crate) struct LossSlots {
    pub distance: AnyDistance,
    reducer: AnyReducer,
    embedding_regularizer: Option<AnyRegularizer>,
    embedding_reg_weight: f64,
}

impl LossSlots {
    /// Builds the slots of loss `loss`, whose terms are `terms`; refuses, as PML does, a
    /// reducer that cannot reduce them.
    pub fn build(
        loss: &str,
        distance: &DistanceConfig,
        reducer: &ReducerConfig,
        embedding_regularizer: Option<&RegularizerConfig>,
        embedding_reg_weight: f64,
        terms: &[(&str, ReductionType)],
    ) -> Result<Self, PmlError> {
        distance.validate()?;
        reducer.validate()?;
        if let Some(r) = embedding_regularizer {
            r.validate()?;
        }
        if !embedding_reg_weight.is_finite() {
            return Err(PmlError::invalid_argument(
                "embedding_reg_weight",
                embedding_reg_weight,
                format!("{loss}: must be finite"),
            ));
        }
        let reducer = reducer.init();
        let mut all = terms.to_vec();
        if embedding_regularizer.is_some() {
            all.push((EMBEDDING_REG_LOSS, ReductionType::AlreadyReduced));
        }
        reducer.check_terms(loss, &all)?;
        Ok(Self {
            distance: distance.init(),
            reducer,
            embedding_regularizer: embedding_regularizer.map(RegularizerConfig::init),
            embedding_reg_weight,
        })
    }

    /// The distance matrix between the batch and its reference set, `[n, m]`.
    pub fn distance_matrix<B: Backend>(&self, input: &LossInput<B>) -> Tensor<B, 2> {
        self.distance.forward(
            input.embeddings.clone(),
            input.reference.as_ref().map(|r| r.embeddings.clone()),
        )
    }

    /// Appends the weighted embedding-regularization term, if any (PML's
    /// `add_embedding_regularization_to_loss_dict`).
    pub fn with_regularization<B: Backend>(
        &self,
        mut terms: LossTerms<B>,
        input: &LossInput<B>,
    ) -> LossTerms<B> {
        if let Some(reg) = &self.embedding_regularizer {
            let value = reg
                .forward(input.embeddings.clone())
                .mul_scalar(self.embedding_reg_weight);
            terms.push(LossTerm::already_reduced(EMBEDDING_REG_LOSS, value));
        }
        terms
    }

    /// How the term called `name` is reduced, when the reducer needs only totals over its
    /// losses (see [`TotalsReduction`]).
    pub fn totals_reduction(&self, name: &str) -> Option<TotalsReduction> {
        self.reducer.totals_reduction(name)
    }

    /// `reduced` (a loss's terms already reduced) plus the reduced embedding-regularization
    /// term, if any.
    pub fn plus_regularization<B: Backend>(
        &self,
        reduced: Tensor<B, 1>,
        input: &LossInput<B>,
    ) -> Tensor<B, 1> {
        let terms = self.with_regularization(LossTerms::new(), input);
        if terms.terms.is_empty() {
            reduced
        } else {
            reduced + self.reduce(&terms, input)
        }
    }

    /// Reduces the terms with the loss's reducer, given the batch and its labels.
    pub fn reduce<B: Backend>(&self, terms: &LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        let ctx = ReduceContext::new(input.embeddings.clone(), input.labels.clone());
        self.reducer.reduce(terms, &ctx)
    }
}

/// The total and count of the hinge losses at the true entries of masks that a
/// [`TotalsReduction`] keeps, block by block ([`hinge`](Self::hinge), then
/// [`merge`](Self::merge)): what the reducer needs of the term holding exactly those losses,
/// without listing them.
///
/// The losses are computed off the autodiff graph: a hinge `[v]₊` with `∂v/∂mat = slope` has the
/// derivative `slope` where `v > 0`, so the gradient reaches the distance matrix through
/// `slope · Σ mat` over the kept active entries ([`value_with_gradient`]), two operations per
/// block in the backward pass instead of every step of the loss.
pub(crate) struct MaskedTotals<B: Backend> {
    rule: TotalsReduction,
    /// `[1]` each: the constant total, the count and the differentiable link.
    total: Tensor<B, 1>,
    count: Tensor<B, 1>,
    link: Tensor<B, 1>,
}

impl<B: Backend> MaskedTotals<B> {
    /// The totals of one block: the hinge losses `[v]₊` at the true entries of `mask` that
    /// the rule keeps. Blocks are combined with [`merge`](Self::merge).
    ///
    /// # Shapes
    /// `v` (a constant computed from `masks.mat()`, `∂v/∂mat = slope`), `mask`: both `[b, m]`
    pub fn hinge(
        rule: TotalsReduction,
        masks: &PairMasks<B>,
        v: Tensor<B, 2>,
        slope: f64,
        mask: Tensor<B, 2, Bool>,
    ) -> Self {
        // A threshold strictly above a non-negative bound keeps active losses only.
        let keeps_active_only =
            matches!(rule, TotalsReduction::Threshold { low: Some(low), .. } if low >= 0.0);
        let active = (!keeps_active_only).then(|| v.clone().greater_elem(0.0));
        let losses = relu(v);
        let kept = match rule.kept(&losses) {
            Some(inside) => mask.bool_and(inside),
            None => mask,
        };
        let kept_float = mask_to_float(kept.clone(), &losses);
        let moving = match active {
            None => kept_float.clone(),
            Some(active) => mask_to_float(kept.bool_and(active), &losses),
        };
        Self {
            rule,
            count: kept_float.clone().sum(),
            total: (losses * kept_float).sum(),
            link: masks.link_sum(moving.mul_scalar(slope)),
        }
    }

    /// The totals of both blocks' losses.
    pub fn merge(self, other: Self) -> Self {
        Self {
            rule: self.rule,
            count: self.count + other.count,
            total: self.total + other.total,
            link: self.link + other.link,
        }
    }

    /// What the reducer returns for the term (zero when no loss was kept), shape `[1]`.
    pub fn reduce(self) -> Tensor<B, 1> {
        let total = value_with_gradient(self.total, self.link);
        match self.rule {
            TotalsReduction::Sum => total,
            TotalsReduction::Mean | TotalsReduction::Threshold { .. } => {
                total / self.count.clamp_min(1.0)
            }
        }
    }
}

/// The optional penalty on a loss's trainable weights (PML's `WeightRegularizerMixin`:
/// `weight_regularizer`, `weight_reg_weight`), added as the already-reduced term
/// `weight_reg_loss`; the loss's reducer passes it through and sums it with the other terms.
#[derive(Clone, Debug)]
pub(crate) struct WeightRegularization {
    regularizer: Option<AnyRegularizer>,
    weight: f64,
}

impl WeightRegularization {
    /// Builds the slot of loss `loss`, refusing an invalid regularizer or a non-finite weight.
    pub fn build(
        loss: &str,
        regularizer: Option<&RegularizerConfig>,
        weight: f64,
    ) -> Result<Self, PmlError> {
        if let Some(r) = regularizer {
            r.validate()?;
        }
        if !weight.is_finite() {
            return Err(PmlError::invalid_argument(
                "weight_reg_weight",
                weight,
                format!("{loss}: must be finite"),
            ));
        }
        Ok(Self {
            regularizer: regularizer.map(RegularizerConfig::init),
            weight,
        })
    }

    /// Appends `weight_reg_weight · regularizer(weights)` as the term `weight_reg_loss`, if a
    /// regularizer is set (PML's `add_weight_regularization_to_loss_dict`). `weights` has one
    /// row per class (or center, or proxy).
    pub fn add<B: Backend>(&self, terms: &mut LossTerms<B>, weights: Tensor<B, 2>) {
        if let Some(reg) = &self.regularizer {
            let value = reg.forward(weights).mul_scalar(self.weight);
            terms.push(LossTerm::already_reduced(WEIGHT_REG_LOSS, value));
        }
    }
}
