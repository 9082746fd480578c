//! Reducers of **pml-rs** (PML's `reducers` module): they turn a loss's unreduced terms
//! ([`LossTerms`](pml_core::LossTerms)) into the scalar to backpropagate.
//!
//! [`MeanReducer`], [`SumReducer`], [`AvgNonZeroReducer`], [`ThresholdReducer`],
//! [`ClassWeightedReducer`], [`PerAnchorReducer`], [`DivisorReducer`], [`DoNothingReducer`] and
//! [`MultipleReducers`], plus [`ReducerConfig`], a serializable enum of them tagged by PML's
//! class name. Every reduction stays on the device (no host read-back).
#![warn(missing_docs)]

mod any;
mod avg_non_zero;
mod class_weighted;
mod divisor;
mod do_nothing;
mod mean;
mod multiple;
mod per_anchor;
mod sum;
pub(crate) mod threshold;

pub use any::{AnyReducer, ReducerConfig, TotalsReduction};
pub use avg_non_zero::{AvgNonZeroReducer, AvgNonZeroReducerConfig};
pub use class_weighted::{ClassWeightedReducer, ClassWeightedReducerConfig};
pub use divisor::{DivisorReducer, DivisorReducerConfig};
pub use do_nothing::{DoNothingReducer, DoNothingReducerConfig};
pub use mean::{MeanReducer, MeanReducerConfig};
pub use multiple::{MultipleReducers, MultipleReducersConfig};
pub use per_anchor::{PerAnchorReducer, PerAnchorReducerConfig};
pub use sum::{SumReducer, SumReducerConfig};
pub use threshold::{ThresholdReducer, ThresholdReducerConfig};

#[cfg(test)]
pub(crate) mod test_util {
    use burn::{backend::NdArray, tensor::Tensor};
    use pml_core::{LossTerm, ReduceContext, tensor::int_tensor};

    pub type B = NdArray;

    pub fn floats(v: &[f32]) -> Tensor<B, 1> {
        Tensor::from_floats(v, &Default::default())
    }

    pub fn ctx(n: usize, labels: &[i64]) -> ReduceContext<B> {
        let device = Default::default();
        ReduceContext::new(
            Tensor::ones([n, 2], &device),
            Some(int_tensor(labels, &device)),
        )
    }

    pub fn element(v: &[f32]) -> LossTerm<B> {
        let idx: Vec<i64> = (0..v.len() as i64).collect();
        LossTerm::element("loss", floats(v), int_tensor(&idx, &Default::default()))
    }

    pub fn scalar(t: Tensor<B, 1>) -> f64 {
        t.into_scalar() as f64
    }
}
