// The weight keeps PML's attribute name `W` (field, setter and record key), so that code and
// checkpoints map one-to-one onto PML's; Burn's derive repeats the name in generated code.
#![allow(non_snake_case)]

use burn::{
    config::Config,
    module::{Module, Param},
    tensor::{Int, Tensor, TensorData, backend::Backend},
};
use pml_core::{
    LossInput, PmlError,
    tensor::{float_vec, int_tensor, int_vec},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    class_weights::value_like,
    margin_softmax::{
        LogitScale, MarginSoftmax, MarginSoftmaxParts, TargetMargin, margin_softmax_impls,
    },
    regularizers::RegularizerConfig,
};

/// Configuration of [`SubCenterArcFaceLoss`], with PML's argument names and defaults (`num_classes`
/// and `embedding_size` are required, as in PML).
#[derive(Config, Debug)]
pub struct SubCenterArcFaceLossConfig {
    /// Number of classes (columns of `W`).
    pub num_classes: usize,
    /// Width of the embeddings (rows of `W`).
    pub embedding_size: usize,
    /// The additive angular margin, in degrees.
    #[config(default = 28.6)]
    pub margin: f64,
    /// The scale `s` of the logits.
    #[config(default = 64.0)]
    pub scale: f64,
    /// Sub-centers per class (columns `c·K .. (c+1)·K` of `W` belong to class `c`).
    #[config(default = 3)]
    pub sub_centers: usize,
    /// The similarity (PML requires `CosineSimilarity`).
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
    /// An optional penalty on the class weights (the rows of `Wᵀ`), added as the term
    /// `weight_reg_loss`.
    pub weight_regularizer: Option<RegularizerConfig>,
    /// Weight of the weight penalty.
    #[config(default = 1.0)]
    pub weight_reg_weight: f64,
}

impl SubCenterArcFaceLossConfig {
    /// Builds the loss on `device`, with `W` drawn from `N(0, 1)` as in PML; refuses zero
    /// sizes, non-finite hyperparameters and distances other than `CosineSimilarity`.
    ///
    /// PML's `SubCenterArcFaceLoss` silently drops every argument but `num_classes`,
    /// `embedding_size`, `margin`, `scale` and `sub_centers`; here the distance, reducer and
    /// regularizers are honoured.
    pub fn try_init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<SubCenterArcFaceLoss<B>, PmlError> {
        let base = MarginSoftmax::build(MarginSoftmaxParts {
            name: "SubCenterArcFaceLoss",
            num_classes: self.num_classes,
            embedding_size: self.embedding_size,
            sub_centers: self.sub_centers,
            margin: TargetMargin::Additive(self.margin.to_radians()),
            scaling: LogitScale::Constant,
            scale: self.scale,
            distance: &self.distance,
            reducer: &self.reducer,
            embedding_regularizer: self.embedding_regularizer.as_ref(),
            embedding_reg_weight: self.embedding_reg_weight,
            weight_regularizer: self.weight_regularizer.as_ref(),
            weight_reg_weight: self.weight_reg_weight,
        })?;
        Ok(SubCenterArcFaceLoss {
            W: base.init_weights(device),
            base,
        })
    }

    /// Builds the loss on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SubCenterArcFaceLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// ArcFace with sub-centers (Deng et al., "Sub-center ArcFace: Boosting Face Recognition by
/// Large-scale Noisy Web Faces", ECCV 2020; PML's `SubCenterArcFaceLoss`).
///
/// Each class has `K = sub_centers` weight columns; the cosine of embedding `x_i` to class `c`
/// is the largest over its sub-centers, `cos θ_ic = max_k s(x_i, w_ck)`, and the loss is
/// [`ArcFaceLoss`](crate::ArcFaceLoss)'s on these cosines:
///
/// `L_i = −log( e^{s cos(θ_iy + m)} / (e^{s cos(θ_iy + m)} + Σ_{c≠y} e^{s cos θ_ic}) )`
///
/// times its miner weight (PML's `convert_to_weights`). Term `loss` (element reduction, mean by
/// default) and, with a weight regularizer, `weight_reg_loss` on the rows of `Wᵀ` (every
/// sub-center). [`get_logits`](Self::get_logits) gives `s cos θ_ic`;
/// [`get_outliers`](Self::get_outliers) finds the samples far from their class's dominant
/// sub-center, to clean a noisy dataset.
///
/// `W` is a trainable `Param` (`[embedding_size, num_classes · sub_centers]`, PML's attribute
/// name), so the loss nests in a model and is optimized and saved with it.
///
/// # Shapes
/// - embeddings `[n, embedding_size]`, labels `[n]` with values in `0..num_classes`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`](pml_core::LossInput::validate), without
/// labels, with a reference set, when the embeddings are not `embedding_size` wide, or when
/// a label is not below `num_classes` (checked on the device, one scalar read back). Use
/// [`try_forward`](pml_core::MetricLoss::try_forward) to get these as errors.
#[derive(Module, Debug)]
pub struct SubCenterArcFaceLoss<B: Backend> {
    /// The sub-center weights, PML's attribute `W`, `[embedding_size, num_classes · sub_centers]`.
    pub W: Param<Tensor<B, 2>>,
    base: MarginSoftmax,
}

margin_softmax_impls!(SubCenterArcFaceLoss);

impl<B: Backend> SubCenterArcFaceLoss<B> {
    /// PML's `get_outliers`: for each class present in `labels`, its dominant sub-center (the
    /// one most of the class's samples are closest to), and the samples whose cosine to it is
    /// below `cos(threshold)` (`threshold` in degrees; PML's default is 75).
    ///
    /// Returns the outliers' indices (class by class, in increasing order within a class) and
    /// the dominant centers `[embedding_size, num_classes]` (zero columns for the classes
    /// absent from `labels`, where PML leaves them uninitialized). Without gradient; reads the
    /// similarities back to the host once, as PML does.
    ///
    /// # Panics
    /// If `labels` is not as long as the batch, the embeddings are not `embedding_size` wide,
    /// or a label is not below `num_classes`.
    pub fn get_outliers(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        threshold: f64,
    ) -> (Tensor<B, 1, Int>, Tensor<B, 2>) {
        let input = LossInput::new(embeddings.clone().detach(), labels.clone());
        input.validate();
        if let Err(e) = self.base.check(&input) {
            panic!("{e}");
        }
        let (c, k) = (self.base.num_classes, self.base.sub_centers());
        let n = embeddings.dims()[0];
        let device = embeddings.device();
        let w = value_like(&self.W, &embeddings).detach();
        let sims = self
            .base
            .similarity(embeddings.detach(), w.clone().transpose())
            .reshape([n, c, k]);
        let own = sims
            .gather(1, labels.clone().reshape([n, 1, 1]).expand([n, 1, k]))
            .reshape([n * k]);
        let sims = float_vec(own);
        let labels = int_vec(labels);
        let cos_threshold = threshold.to_radians().cos();
        let argmax = |row: &[f64]| {
            (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best })
        };
        let mut outliers = Vec::new();
        let mut columns = vec![0i64; c];
        let mut present = vec![0.0f64; c];
        for class in 0..c {
            let members: Vec<usize> = (0..n).filter(|&i| labels[i] == class as i64).collect();
            if members.is_empty() {
                continue;
            }
            let mut counts = vec![0usize; k];
            for &i in &members {
                counts[argmax(&sims[i * k..(i + 1) * k])] += 1;
            }
            let dominant =
                (0..k).fold(0, |best, j| if counts[j] > counts[best] { j } else { best });
            columns[class] = (class * k + dominant) as i64;
            present[class] = 1.0;
            outliers.extend(
                members
                    .into_iter()
                    .filter(|&i| sims[i * k + dominant] < cos_threshold)
                    .map(|i| i as i64),
            );
        }
        let keep =
            Tensor::<B, 2>::from_data(TensorData::new(present, [1, c]), (&device, w.dtype()));
        let dominant = w.select(1, int_tensor(&columns, &device)) * keep;
        (int_tensor(&outliers, &device), dominant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Int;
    use pml_core::{LossInput, MetricLoss};

    type B = Autodiff<NdArray>;

    #[test]
    fn cosine_is_the_closest_sub_center() {
        let device = Default::default();
        // Two classes of two sub-centers; x = (1, 0) is closest to class 0's second
        // sub-center (1, 0) and to class 1's first (1, 1)/√2. With m = 0, s = 1 the logits are
        // (1, 1/√2).
        let loss = SubCenterArcFaceLossConfig::new(2, 2)
            .with_sub_centers(2)
            .with_margin(0.0)
            .with_scale(1.0)
            .init::<B>(&device)
            .with_W(Tensor::from_floats(
                [[0.0, 1.0, 1.0, -1.0], [1.0, 0.0, 1.0, 0.0]],
                &device,
            ));
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0]], &device);
        let logits = pml_core::tensor::float_vec(loss.get_logits(x.clone()));
        assert!((logits[0] - 1.0).abs() < 1e-6 && (logits[1] - 0.5f64.sqrt()).abs() < 1e-6);
        let labels = Tensor::<B, 1, Int>::from_ints([0], &device);
        let v = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        let want = (1.0 + (0.5f64.sqrt() - 1.0).exp()).ln();
        assert!((v - want).abs() < 1e-5, "{v} vs {want}");
    }

    #[test]
    fn outliers_are_far_from_the_dominant_sub_center() {
        let device = Default::default();
        // Class 0's sub-centers: (1, 0) and (0, 1). Samples 0, 1 are near (1, 0) (dominant),
        // sample 2 lies on (0, 1): 90° from the dominant center, an outlier at 75°.
        let loss = SubCenterArcFaceLossConfig::new(1, 2)
            .with_sub_centers(2)
            .init::<NdArray>(&device)
            .with_W(Tensor::from_floats([[1.0, 0.0], [0.0, 1.0]], &device));
        let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.1], [1.0, -0.1], [0.0, 1.0]], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 0], &device);
        let (outliers, centers) = loss.get_outliers(x, labels, 75.0);
        assert_eq!(int_vec(outliers), vec![2]);
        assert_eq!(float_vec(centers), vec![1.0, 0.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = SubCenterArcFaceLossConfig::new(3, 4)
            .with_scale(4.0)
            .init::<crate::gradcheck::B64>(&Default::default());
        crate::gradcheck::check_gradients(&loss, &[0, 1, 2, 0, 1, 2], 4, 13);
    }
}
