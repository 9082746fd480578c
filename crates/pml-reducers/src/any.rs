use burn::tensor::{Bool, Tensor, backend::Backend};
use pml_core::{LossTerm, PmlError, ReduceContext, Reducer, ReductionType};

use crate::{
    AvgNonZeroReducer, AvgNonZeroReducerConfig, ClassWeightedReducer, ClassWeightedReducerConfig,
    DivisorReducer, DivisorReducerConfig, DoNothingReducer, DoNothingReducerConfig, MeanReducer,
    MeanReducerConfig, MultipleReducers, MultipleReducersConfig, PerAnchorReducer,
    PerAnchorReducerConfig, SumReducer, SumReducerConfig, ThresholdReducer, ThresholdReducerConfig,
    threshold::threshold_mask,
};

/// Any reducer, by configuration: the type of a loss's `reducer` slot.
///
/// Serializes as a PML spec, `{"name": "ThresholdReducer", "params": {"low": 0.1}}`.
///
/// ```
/// use pml_reducers::ReducerConfig;
/// let c: ReducerConfig = serde_json::from_str(
///     r#"{"name": "PerAnchorReducer", "params": {"reducer": {"name": "SumReducer"}}}"#,
/// ).unwrap();
/// assert_eq!(c.pml_name(), "PerAnchorReducer");
/// ```
#[derive(Clone, Debug)]
pub enum ReducerConfig {
    /// [`MeanReducer`].
    Mean(MeanReducerConfig),
    /// [`SumReducer`].
    Sum(SumReducerConfig),
    /// [`AvgNonZeroReducer`].
    AvgNonZero(AvgNonZeroReducerConfig),
    /// [`ThresholdReducer`].
    Threshold(ThresholdReducerConfig),
    /// [`ClassWeightedReducer`].
    ClassWeighted(ClassWeightedReducerConfig),
    /// [`PerAnchorReducer`].
    PerAnchor(PerAnchorReducerConfig),
    /// [`DivisorReducer`].
    Divisor(DivisorReducerConfig),
    /// [`DoNothingReducer`].
    DoNothing(DoNothingReducerConfig),
    /// [`MultipleReducers`].
    Multiple(MultipleReducersConfig),
}

pml_core::spec_enum!(ReducerConfig {
    Mean(MeanReducerConfig) = "MeanReducer" => MeanReducerConfig::new(),
    Sum(SumReducerConfig) = "SumReducer" => SumReducerConfig::new(),
    AvgNonZero(AvgNonZeroReducerConfig) = "AvgNonZeroReducer" => AvgNonZeroReducerConfig::new(),
    Threshold(ThresholdReducerConfig) = "ThresholdReducer" => ThresholdReducerConfig::new(),
    ClassWeighted(ClassWeightedReducerConfig) = "ClassWeightedReducer" => ClassWeightedReducerConfig::new(Vec::new()); requires ["weights"],
    PerAnchor(PerAnchorReducerConfig) = "PerAnchorReducer" => PerAnchorReducerConfig::new(),
    Divisor(DivisorReducerConfig) = "DivisorReducer" => DivisorReducerConfig::new(),
    DoNothing(DoNothingReducerConfig) = "DoNothingReducer" => DoNothingReducerConfig::new(),
    Multiple(MultipleReducersConfig) = "MultipleReducers" => MultipleReducersConfig::new(Default::default()),
});

impl ReducerConfig {
    /// [`MeanReducer`].
    pub fn mean() -> Self {
        Self::Mean(MeanReducerConfig::new())
    }

    /// [`AvgNonZeroReducer`], the default of most pair and triplet losses.
    pub fn avg_non_zero() -> Self {
        Self::AvgNonZero(AvgNonZeroReducerConfig::new())
    }

    /// Checks the hyperparameters without building.
    pub fn validate(&self) -> Result<(), PmlError> {
        match self {
            Self::Threshold(c) => c.validate(),
            Self::ClassWeighted(c) if c.weights.is_empty() => Err(PmlError::invalid_argument(
                "weights",
                "[]",
                "ClassWeightedReducer needs one weight per class",
            )),
            Self::PerAnchor(c) => c.reducer.validate(),
            Self::Multiple(c) => {
                c.default_reducer.validate()?;
                c.reducers.values().try_for_each(|r| r.validate())
            }
            _ => Ok(()),
        }
    }

    /// Builds the reducer.
    ///
    /// # Panics
    /// On invalid hyperparameters (see [`validate`](Self::validate)).
    pub fn init(&self) -> AnyReducer {
        match self {
            Self::Mean(c) => AnyReducer::Mean(c.init()),
            Self::Sum(c) => AnyReducer::Sum(c.init()),
            Self::AvgNonZero(c) => AnyReducer::AvgNonZero(c.init()),
            Self::Threshold(c) => AnyReducer::Threshold(c.init()),
            Self::ClassWeighted(c) => AnyReducer::ClassWeighted(c.init()),
            Self::PerAnchor(c) => AnyReducer::PerAnchor(c.init()),
            Self::Divisor(c) => AnyReducer::Divisor(c.init()),
            Self::DoNothing(c) => AnyReducer::DoNothing(c.init()),
            Self::Multiple(c) => AnyReducer::Multiple(c.init()),
        }
    }
}

/// Any built reducer (see [`ReducerConfig`]).
#[derive(Clone, Debug)]
pub enum AnyReducer {
    /// [`MeanReducer`].
    Mean(MeanReducer),
    /// [`SumReducer`].
    Sum(SumReducer),
    /// [`AvgNonZeroReducer`].
    AvgNonZero(AvgNonZeroReducer),
    /// [`ThresholdReducer`].
    Threshold(ThresholdReducer),
    /// [`ClassWeightedReducer`].
    ClassWeighted(ClassWeightedReducer),
    /// [`PerAnchorReducer`].
    PerAnchor(PerAnchorReducer),
    /// [`DivisorReducer`].
    Divisor(DivisorReducer),
    /// [`DoNothingReducer`].
    DoNothing(DoNothingReducer),
    /// [`MultipleReducers`].
    Multiple(MultipleReducers),
}

macro_rules! each {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            AnyReducer::Mean($r) => $e,
            AnyReducer::Sum($r) => $e,
            AnyReducer::AvgNonZero($r) => $e,
            AnyReducer::Threshold($r) => $e,
            AnyReducer::ClassWeighted($r) => $e,
            AnyReducer::PerAnchor($r) => $e,
            AnyReducer::Divisor($r) => $e,
            AnyReducer::DoNothing($r) => $e,
            AnyReducer::Multiple($r) => $e,
        }
    };
}

impl AnyReducer {
    /// Whether this reducer can reduce the term called `name` of type `reduction_type`
    /// (for [`MultipleReducers`], the reducer chosen for that name decides).
    pub fn supports_term(&self, name: &str, reduction_type: ReductionType) -> bool {
        match self {
            Self::Multiple(m) => m.supports_term(name, reduction_type),
            Self::PerAnchor(r) => r.supports_type(reduction_type),
            _ => true,
        }
    }

    /// Refuses, as PML does, a reducer that cannot reduce one of a loss's terms.
    pub fn check_terms(&self, loss: &str, terms: &[(&str, ReductionType)]) -> Result<(), PmlError> {
        for (name, rt) in terms {
            if !self.supports_term(name, *rt) {
                return Err(PmlError::Unsupported(format!(
                    "{loss}: the reducer of term `{name}` cannot reduce `{}` losses (PML: \"{} reduction not supported\")",
                    rt.pml_name(),
                    capitalized(rt.pml_name())
                )));
            }
        }
        Ok(())
    }
}

/// A reduction that needs only totals over a term's losses, not the losses themselves: a loss
/// whose per-tuple losses are too many to list (all triplets of a batch) can accumulate these
/// totals block by block instead. Given by [`AnyReducer::totals_reduction`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TotalsReduction {
    /// `Σ losses` ([`SumReducer`]).
    Sum,
    /// `Σ losses / count`, zero without losses ([`MeanReducer`]).
    Mean,
    /// `Σ kept / max(#kept, 1)` over the losses strictly between `low` and `high`
    /// ([`ThresholdReducer`]; [`AvgNonZeroReducer`] is `low = 0`).
    Threshold {
        /// Lower bound (exclusive), if any.
        low: Option<f64>,
        /// Upper bound (exclusive), if any.
        high: Option<f64>,
    },
}

impl TotalsReduction {
    /// Which of `losses` are counted and summed: all of them (`None`), or those strictly
    /// inside a threshold's bounds.
    pub fn kept<B: Backend, const D: usize>(
        &self,
        losses: &Tensor<B, D>,
    ) -> Option<Tensor<B, D, Bool>> {
        match *self {
            Self::Threshold { low, high } => Some(threshold_mask(losses, low, high)),
            Self::Sum | Self::Mean => None,
        }
    }
}

impl AnyReducer {
    /// How the term called `name` is reduced, when that needs only totals (sum, count, or the
    /// sum and count of the losses inside a threshold's bounds); `None` for reducers that look
    /// at each loss's indices or labels (class weights, per-anchor, divisor, do-nothing).
    pub fn totals_reduction(&self, name: &str) -> Option<TotalsReduction> {
        match self {
            Self::Sum(_) => Some(TotalsReduction::Sum),
            Self::Mean(_) => Some(TotalsReduction::Mean),
            Self::AvgNonZero(r) => Some(threshold_totals(r.threshold())),
            Self::Threshold(r) => Some(threshold_totals(r)),
            Self::Multiple(m) => m.reducer_for(name).totals_reduction(name),
            Self::ClassWeighted(_) | Self::PerAnchor(_) | Self::Divisor(_) | Self::DoNothing(_) => {
                None
            }
        }
    }
}

fn threshold_totals(r: &ThresholdReducer) -> TotalsReduction {
    let (low, high) = r.bounds();
    TotalsReduction::Threshold { low, high }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

impl<B: Backend> Reducer<B> for AnyReducer {
    fn reduce_losses(
        &self,
        term: &LossTerm<B>,
        losses: Tensor<B, 1>,
        ctx: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        each!(self, r => r.reduce_losses(term, losses, ctx))
    }

    fn supports(&self, reduction_type: ReductionType) -> bool {
        each!(self, r => Reducer::<B>::supports(r, reduction_type))
    }

    fn reduce_term(&self, term: &LossTerm<B>, ctx: &ReduceContext<B>) -> Tensor<B, 1> {
        each!(self, r => r.reduce_term(term, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_anchor_refuses_triplet_terms_by_name() {
        let r = ReducerConfig::PerAnchor(PerAnchorReducerConfig::new()).init();
        let err = r
            .check_terms("TripletMarginLoss", &[("loss", ReductionType::Triplet)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("Triplet reduction not supported"), "{err}");
        assert!(
            r.check_terms("ContrastiveLoss", &[("pos_loss", ReductionType::PosPair)])
                .is_ok()
        );
    }

    #[test]
    fn every_reducer_spec_round_trips() {
        for spec in [
            r#"{"name": "MeanReducer", "params": {}}"#,
            r#"{"name": "SumReducer"}"#,
            r#"{"name": "AvgNonZeroReducer", "params": {}}"#,
            r#"{"name": "ThresholdReducer", "params": {"low": 0.1, "high": 0.5}}"#,
            r#"{"name": "ClassWeightedReducer", "params": {"weights": [1.0, 0.5]}}"#,
            r#"{"name": "PerAnchorReducer", "params": {}}"#,
            r#"{"name": "DivisorReducer", "params": {}}"#,
            r#"{"name": "DoNothingReducer", "params": {}}"#,
            r#"{"name": "MultipleReducers", "params": {"reducers": {}}}"#,
        ] {
            let c: ReducerConfig = serde_json::from_str(spec).unwrap();
            c.validate().unwrap();
            let again: ReducerConfig =
                serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(again.pml_name(), c.pml_name());
        }
        let bad: ReducerConfig =
            serde_json::from_str(r#"{"name": "ThresholdReducer", "params": {}}"#).unwrap();
        assert!(bad.validate().is_err());
    }
}
