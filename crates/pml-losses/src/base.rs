//! The slots every loss has (PML's `BaseMetricLossFunction`: distance, reducer, embedding
//! regularizer), and the weight regularizer of the losses with trainable weights (PML's
//! `WeightRegularizerMixin`), built and used in one place.

use burn::tensor::{Bool, Tensor, activation::relu, backend::Backend};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MatrixLink, PmlError, ReduceContext, Reducer,
    ReductionType, Regularizer, SumGradient,
    blocks::map_owned,
    math::scalar_div,
    tensor::{mask_to_float, value_with_gradient},
};
use pml_distances::{AnyDistance, DistanceConfig};
use pml_reducers::{AnyReducer, ReducerConfig, TotalsReduction};

use crate::regularizers::{AnyRegularizer, RegularizerConfig};

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

/// One block of a term of hinge losses `[v]₊` at the true entries of a mask, as a
/// [`TotalsReduction`] sees them: the total and the count of the losses it keeps, and which of
/// them move with the matrix (kept and active, `v > 0`). [`reduce_hinges`] reduces the terms
/// over the blocks, so the losses are never listed.
pub(crate) struct HingeBlock<B: Backend> {
    /// `[1]` each: the constant total and count of the kept losses.
    total: Tensor<B, 1>,
    count: Tensor<B, 1>,
    /// `[b, m]`: 1 where a loss is kept and active, else 0.
    moving: Tensor<B, 2>,
    /// How many times the block's losses count (the total and count include it).
    weight: f64,
}

impl<B: Backend> HingeBlock<B> {
    /// The block of the losses `[v]₊` at the true entries of `mask` that `rule` keeps, each
    /// counted `weight` times (see [`PairMasks::weight`](crate::generic_pair::PairMasks)).
    ///
    /// # Shapes
    /// `v` (a constant computed from a block's matrix), `mask`: both `[b, m]`
    pub fn new(
        rule: TotalsReduction,
        v: Tensor<B, 2>,
        mask: Tensor<B, 2, Bool>,
        weight: f64,
    ) -> Self {
        // A threshold at or above zero keeps positive losses only, which are `v` itself: the
        // kept losses are then exactly the moving ones.
        if matches!(rule, TotalsReduction::Threshold { low: Some(low), .. } if low >= 0.0) {
            let inside = rule
                .kept(&v)
                .expect("a threshold keeps what lies inside its bounds");
            let kept = mask_to_float(mask.bool_and(inside), &v);
            return Self {
                count: kept.clone().sum().mul_scalar(weight),
                total: (v * kept.clone()).sum().mul_scalar(weight),
                moving: kept,
                weight,
            };
        }
        let active = v.clone().greater_elem(0.0);
        let losses = relu(v);
        let kept = match rule.kept(&losses) {
            Some(inside) => mask.bool_and(inside),
            None => mask,
        };
        let kept_float = mask_to_float(kept.clone(), &losses);
        Self {
            count: kept_float.clone().sum().mul_scalar(weight),
            moving: mask_to_float(kept.bool_and(active), &losses),
            total: (losses * kept_float).sum().mul_scalar(weight),
            weight,
        }
    }
}

/// A term of hinge losses `[v]₊` of a matrix: how its reducer reduces it and `slope = ∂v/∂mat`,
/// a constant.
pub(crate) struct HingeTerm {
    pub rule: TotalsReduction,
    pub slope: f64,
}

/// `Σ_k` (term `k` reduced by its rule) over the blocks of one matrix (`[1]`; a term without
/// kept losses is zero): its kept losses' total, divided by their count unless the rule sums.
///
/// The losses were computed off the autodiff graph. Term `k`'s derivative w.r.t. the entry
/// `(i, j)` is `w_k = slope_k / count_k` (`slope_k` for a sum) where its loss moves, else 0, so
/// once the counts are known all terms reach the matrix through one gradient per block, with
/// the slopes `weight · Σ_k w_k · moving_k` ([`MatrixLink::sum_gradient`]), attached at once
/// ([`SumGradient::attach`], [`value_with_gradient`]): two `[b, m] × [m, d]` products per block
/// whatever the number of terms. The blocks run on up to `threads` threads.
pub(crate) fn reduce_hinges<B: Backend, const K: usize>(
    terms: [HingeTerm; K],
    blocks: Vec<(MatrixLink<B>, [HingeBlock<B>; K])>,
    threads: usize,
) -> Tensor<B, 1> {
    let sum = |a: Tensor<B, 1>, b: Tensor<B, 1>| a + b;
    let mut value = None;
    let mut weights = Vec::with_capacity(K);
    for (k, term) in terms.iter().enumerate() {
        let total = blocks.iter().map(|(_, h)| h[k].total.clone()).reduce(sum);
        let count = blocks.iter().map(|(_, h)| h[k].count.clone()).reduce(sum);
        let (total, count) = total.zip(count).expect("at least one block");
        let (reduced, weight) = match term.rule {
            TotalsReduction::Sum => (total, count.ones_like().mul_scalar(term.slope)),
            TotalsReduction::Mean | TotalsReduction::Threshold { .. } => {
                let count = count.clamp_min(1.0);
                (total / count.clone(), scalar_div(term.slope, count))
            }
        };
        value = Some(value.map_or(reduced.clone(), |v| v + reduced));
        weights.push(weight.reshape([1, 1]));
    }
    let value = value.expect("at least one term");
    if !B::ad_enabled(&value.device()) {
        return value;
    }
    let gradients = map_owned(blocks, threads, |(link, hinges)| {
        let slopes = hinges
            .into_iter()
            .zip(&weights)
            .map(|(h, w)| h.moving * w.clone().mul_scalar(h.weight))
            .reduce(|a, b| a + b)
            .expect("at least one term");
        link.sum_gradient(slopes)
    });
    value_with_gradient(value, SumGradient::attach(gradients))
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
