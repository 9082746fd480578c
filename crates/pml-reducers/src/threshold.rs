use burn::{
    config::Config,
    tensor::{Bool, Tensor, backend::Backend},
};
use pml_core::{LossTerm, PmlError, ReduceContext, Reducer, tensor::mask_to_float};

/// Configuration of [`ThresholdReducer`], with PML's argument names (at least one bound).
#[derive(Config, Debug)]
pub struct ThresholdReducerConfig {
    /// Keep losses strictly above this value.
    pub low: Option<f64>,
    /// Keep losses strictly below this value.
    pub high: Option<f64>,
}

impl ThresholdReducerConfig {
    /// Checks that at least one bound is given.
    pub fn validate(&self) -> Result<(), PmlError> {
        if self.low.is_none() && self.high.is_none() {
            return Err(PmlError::invalid_argument(
                "low/high",
                "None/None",
                "ThresholdReducer: at least one of low or high must be specified",
            ));
        }
        Ok(())
    }

    /// Builds the reducer.
    ///
    /// # Panics
    /// If both `low` and `high` are `None`.
    pub fn init(&self) -> ThresholdReducer {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        ThresholdReducer {
            low: self.low,
            high: self.high,
        }
    }
}

/// The mean of the losses inside `(low, high)` (PML's `ThresholdReducer`); zero (with a
/// gradient graph) when none is.
///
/// `mean = Σ lᵢ·[low < lᵢ < high] / max(1, Σ [low < lᵢ < high])`, computed with masks on the
/// device.
#[derive(Clone, Debug)]
pub struct ThresholdReducer {
    low: Option<f64>,
    high: Option<f64>,
}

impl ThresholdReducer {
    pub(crate) fn with_bounds(low: Option<f64>, high: Option<f64>) -> Self {
        Self { low, high }
    }

    /// The bounds `(low, high)`: losses strictly inside them are averaged.
    pub fn bounds(&self) -> (Option<f64>, Option<f64>) {
        (self.low, self.high)
    }
}

impl<B: Backend> Reducer<B> for ThresholdReducer {
    fn reduce_losses(
        &self,
        _: &LossTerm<B>,
        losses: Tensor<B, 1>,
        _: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        let keep = threshold_mask(&losses, self.low, self.high);
        let count = mask_to_float(keep.clone(), &losses).sum().clamp_min(1.0);
        losses.mask_fill(keep.bool_not(), 0.0).sum() / count
    }
}

/// The losses strictly inside `(low, high)` (a missing bound does not limit).
///
/// # Panics
/// If both bounds are missing (refused when a [`ThresholdReducer`] is built).
pub(crate) fn threshold_mask<B: Backend, const D: usize>(
    losses: &Tensor<B, D>,
    low: Option<f64>,
    high: Option<f64>,
) -> Tensor<B, D, Bool> {
    match (low, high) {
        (Some(lo), Some(hi)) => losses
            .clone()
            .greater_elem(lo)
            .bool_and(losses.clone().lower_elem(hi)),
        (Some(lo), None) => losses.clone().greater_elem(lo),
        (None, Some(hi)) => losses.clone().lower_elem(hi),
        (None, None) => unreachable!("validated at construction"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn keeps_losses_inside_the_bounds() {
        let both = ThresholdReducerConfig::new()
            .with_low(Some(0.1))
            .with_high(Some(0.5))
            .init();
        let c = ctx(4, &[0; 4]);
        let got = scalar(both.reduce_term(&element(&[0.05, 0.2, 0.4, 0.9]), &c));
        assert!((got - 0.3).abs() < 1e-6);
        let none = scalar(both.reduce_term(&element(&[0.0, 0.9]), &c));
        assert_eq!(none, 0.0);
    }

    #[test]
    #[should_panic(expected = "at least one of low or high")]
    fn refuses_no_bounds() {
        ThresholdReducerConfig::new().init();
    }
}
