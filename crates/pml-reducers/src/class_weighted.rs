use burn::{
    config::Config,
    tensor::{ElementConversion, Int, Tensor, TensorData, backend::Backend},
};
use pml_core::{LossTerm, ReduceContext, Reducer, tensor::take};

/// Configuration of [`ClassWeightedReducer`], with PML's argument names.
#[derive(Config, Debug)]
pub struct ClassWeightedReducerConfig {
    /// One weight per class label (`weights[label]`).
    pub weights: Vec<f64>,
}

impl ClassWeightedReducerConfig {
    /// Builds the reducer.
    ///
    /// # Panics
    /// If `weights` is empty.
    pub fn init(&self) -> ClassWeightedReducer {
        assert!(
            !self.weights.is_empty(),
            "ClassWeightedReducer: `weights` must hold one weight per class, got an empty list"
        );
        ClassWeightedReducer {
            weights: self.weights.clone(),
        }
    }
}

/// The mean of the losses weighted by the class of their anchor (PML's `ClassWeightedReducer`):
/// `(1/k) Σ lᵢ · w[label[anchorᵢ]]`. Element losses use their own index, pairs and triplets
/// their anchor.
///
/// # Panics
/// When reducing without labels, or with a label outside `0..weights.len()`.
#[derive(Clone, Debug)]
pub struct ClassWeightedReducer {
    weights: Vec<f64>,
}

impl<B: Backend> Reducer<B> for ClassWeightedReducer {
    fn reduce_losses(
        &self,
        term: &LossTerm<B>,
        losses: Tensor<B, 1>,
        ctx: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        let labels = ctx.labels.clone().unwrap_or_else(|| {
            panic!(
                "ClassWeightedReducer needs the batch's labels (term `{}`)",
                term.name
            )
        });
        let anchors =
            term.indices.anchors().cloned().unwrap_or_else(|| {
                panic!("ClassWeightedReducer: term `{}` has no indices", term.name)
            });
        let weights = Tensor::<B, 1>::from_data(
            TensorData::new(self.weights.clone(), [self.weights.len()]),
            (&losses.device(), losses.dtype()),
        );
        let anchor_labels = take(labels, anchors);
        check_label_range(&anchor_labels, self.weights.len());
        let w = take(weights, anchor_labels);
        (losses * w).mean()
    }
}

/// Panics, naming `labels` and `weights`, unless every label is a class of the weights (a
/// label past them would index out of bounds). Reads two numbers back from the device.
fn check_label_range<B: Backend>(labels: &Tensor<B, 1, Int>, classes: usize) {
    if labels.dims()[0] == 0 {
        return;
    }
    let min: i64 = labels.clone().min().into_scalar().elem();
    let max: i64 = labels.clone().max().into_scalar().elem();
    if min < 0 || max >= classes as i64 {
        let bad = if min < 0 { min } else { max };
        panic!(
            "ClassWeightedReducer: label {bad} in `labels` has no weight (`weights` has {classes} classes, 0..{classes})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use pml_core::tensor::int_tensor;

    #[test]
    fn weights_by_anchor_label() {
        let r = ClassWeightedReducerConfig::new(vec![1.0, 0.5]).init();
        let device = Default::default();
        let term = LossTerm::pos_pair(
            "pos_loss",
            floats(&[2.0, 4.0]),
            int_tensor(&[0, 2], &device),
            int_tensor(&[1, 1], &device),
        );
        // labels: 0 -> class 1 (w 0.5), 2 -> class 0 (w 1.0): (2*0.5 + 4*1) / 2
        let got = scalar(r.reduce_term(&term, &ctx(3, &[1, 1, 0])));
        assert_eq!(got, 2.5);
    }

    #[test]
    #[should_panic(expected = "label 7 in `labels` has no weight (`weights` has 2 classes")]
    fn a_label_past_the_weights_is_named() {
        // Found by the bad-input matrix: an out-of-bounds index inside ndarray before.
        let r = ClassWeightedReducerConfig::new(vec![1.0, 0.5]).init();
        let device = Default::default();
        let term = LossTerm::element("loss", floats(&[2.0, 4.0]), int_tensor(&[0, 2], &device));
        r.reduce_term(&term, &ctx(3, &[1, 1, 7]));
    }
}
