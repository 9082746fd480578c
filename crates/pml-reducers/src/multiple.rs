use std::collections::BTreeMap;

use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{LossTerm, ReduceContext, Reducer, ReductionType};

use crate::{AnyReducer, ReducerConfig};

/// Configuration of [`MultipleReducers`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct MultipleReducersConfig {
    /// A reducer per term name (`"pos_loss"`, `"neg_loss"`, `"embedding_reg_loss"`, ...).
    pub reducers: BTreeMap<String, ReducerConfig>,
    /// The reducer of every other term.
    #[config(default = "Box::new(ReducerConfig::mean())")]
    pub default_reducer: Box<ReducerConfig>,
}

impl MultipleReducersConfig {
    /// Builds the reducer.
    pub fn init(&self) -> MultipleReducers {
        MultipleReducers {
            reducers: self
                .reducers
                .iter()
                .map(|(k, v)| (k.clone(), v.init()))
                .collect(),
            default_reducer: Box::new(self.default_reducer.init()),
        }
    }
}

/// A reducer per term, chosen by the term's name, results summed (PML's `MultipleReducers`):
/// `Σₜ reducerₜ(termₜ)`.
#[derive(Clone, Debug)]
pub struct MultipleReducers {
    reducers: BTreeMap<String, AnyReducer>,
    default_reducer: Box<AnyReducer>,
}

impl MultipleReducers {
    /// The reducer used for the term called `name`.
    pub fn reducer_for(&self, name: &str) -> &AnyReducer {
        self.reducers.get(name).unwrap_or(&self.default_reducer)
    }

    /// Whether the reducer of term `name` can reduce terms of this type.
    pub fn supports_term(&self, name: &str, reduction_type: ReductionType) -> bool {
        self.reducer_for(name).supports_term(name, reduction_type)
    }
}

impl<B: Backend> Reducer<B> for MultipleReducers {
    fn reduce_losses(
        &self,
        term: &LossTerm<B>,
        _: Tensor<B, 1>,
        ctx: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        self.reducer_for(&term.name).reduce_term(term, ctx)
    }

    fn reduce_term(&self, term: &LossTerm<B>, ctx: &ReduceContext<B>) -> Tensor<B, 1> {
        self.reducer_for(&term.name).reduce_term(term, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use pml_core::LossTerms;

    #[test]
    fn reduces_each_term_with_its_reducer_and_sums() {
        let config: MultipleReducersConfig = serde_json::from_str(
            r#"{"reducers": {"a": {"name": "SumReducer", "params": {}}},
                "default_reducer": {"name": "MeanReducer", "params": {}}}"#,
        )
        .unwrap();
        let r = config.init();
        let mut a = element(&[1.0, 2.0]);
        a.name = "a".into();
        let mut b = element(&[2.0, 4.0]);
        b.name = "b".into();
        let terms = LossTerms::new().with(a).with(b);
        assert_eq!(scalar(r.reduce(&terms, &ctx(2, &[0, 0]))), 3.0 + 3.0);
    }
}
