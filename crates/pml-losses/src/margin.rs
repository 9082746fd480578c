use burn::{
    config::Config,
    module::{Module, Param},
    tensor::{Tensor, TensorData, activation::relu, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::{TripletsPerAnchor, convert_to_triplets},
    rng::SeededRng,
    tensor::{gather_pairs, mask_to_float},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{base::LossSlots, regularizers::RegularizerConfig};

const TERMS: [(&str, ReductionType); 2] = [
    ("margin_loss", ReductionType::Triplet),
    ("beta_reg_loss", ReductionType::Element),
];

/// Configuration of [`MarginLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct MarginLossConfig {
    /// The margin `α` around the boundary `β`.
    #[config(default = 0.2)]
    pub margin: f64,
    /// Weight `ν` of the regularization on `β` (used with `learn_beta`).
    #[config(default = 0.0)]
    pub nu: f64,
    /// The initial boundary `β` between positive and negative distances.
    #[config(default = 1.2)]
    pub beta: f64,
    /// Triplets used without an indices tuple: `"all"` or a number per anchor.
    #[config(default = "TripletsPerAnchor::All")]
    pub triplets_per_anchor: TripletsPerAnchor,
    /// Make `β` a trainable parameter.
    #[config(default = false)]
    pub learn_beta: bool,
    /// With a number of classes, one `β` per class (indexed by the anchor's label).
    pub num_classes: Option<usize>,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `DivisorReducer`).
    #[config(default = "ReducerConfig::Divisor(pml_reducers::DivisorReducerConfig::new())")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
    /// Seed of the triplet sampler used when `triplets_per_anchor` is a number.
    #[config(default = 0)]
    pub seed: u64,
}

impl MarginLossConfig {
    /// Builds the loss on `device` (where `β` lives), refusing invalid hyperparameters.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<MarginLoss<B>, PmlError> {
        for (name, v) in [
            ("margin", self.margin),
            ("nu", self.nu),
            ("beta", self.beta),
        ] {
            if !v.is_finite() {
                return Err(PmlError::invalid_argument(
                    name,
                    v,
                    "MarginLoss: must be finite",
                ));
            }
        }
        if self.num_classes == Some(0) {
            return Err(PmlError::invalid_argument(
                "num_classes",
                0,
                "MarginLoss: must be positive (or None for one shared beta)",
            ));
        }
        let n = self.num_classes.unwrap_or(1);
        let beta = Tensor::<B, 1>::from_data(TensorData::new(vec![self.beta; n], [n]), device);
        Ok(MarginLoss {
            margin: self.margin,
            nu: self.nu,
            learn_beta: self.learn_beta,
            beta: Param::from_tensor(beta).set_require_grad(self.learn_beta),
            triplets_per_anchor: self.triplets_per_anchor,
            rng: SeededRng::new(self.seed),
            slots: LossSlots::build(
                "MarginLoss",
                &self.distance,
                &self.reducer,
                self.embedding_regularizer.as_ref(),
                self.embedding_reg_weight,
                &TERMS,
            )?,
        })
    }

    /// Builds the loss on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MarginLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The margin loss of Wu et al., "Sampling Matters in Deep Embedding Learning", ICCV 2017
/// (PML's `MarginLoss`): for each triplet `(a, p, n)`
///
/// `L = [d(a, p) − β + α]₊ + [β − d(a, n) + α]₊`
///
/// (signs swapped for similarities), reduced by default as the sum over triplets divided by the
/// number of non-zero pair terms (`DivisorReducer`). `β` is one value, or one per class indexed by
/// the anchor's label (`num_classes`); with `learn_beta` it is a trainable
/// `Param<Tensor<B, 1>>` (shape `[num_classes]` or `[1]`) and the term `beta_reg_loss = ν·β`
/// pushes it down.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels and indices tuple, or with
/// per-class `β` and no labels.
#[derive(Module, Debug)]
pub struct MarginLoss<B: Backend> {
    margin: f64,
    nu: f64,
    learn_beta: bool,
    /// The boundary `β`, PML's attribute `beta`.
    pub beta: Param<Tensor<B, 1>>,
    triplets_per_anchor: TripletsPerAnchor,
    rng: SeededRng,
    slots: LossSlots,
}

impl<B: Backend> MarginLoss<B> {
    /// Replaces `β` with the given values (shape `[num_classes]` or `[1]`).
    ///
    /// # Panics
    /// If the shape differs from the current `β`'s.
    pub fn with_beta(mut self, beta: Tensor<B, 1>) -> Self {
        assert_eq!(
            beta.dims(),
            self.beta.dims(),
            "MarginLoss::with_beta: `beta` has shape {:?}, expected {:?}",
            beta.dims(),
            self.beta.dims()
        );
        self.beta = Param::from_tensor(beta).set_require_grad(self.learn_beta);
        self
    }

    /// `β` in the dtype of `like` (detached unless it is learned).
    fn beta(&self, like: &Tensor<B, 2>) -> Tensor<B, 1> {
        let beta = self.beta.val().cast(like.dtype());
        if self.learn_beta { beta } else { beta.detach() }
    }
}

impl<B: Backend> MetricLoss<B> for MarginLoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let [a, p, n] = convert_to_triplets(input, self.triplets_per_anchor, &self.rng);
        let num = a.dims()[0];
        let terms = if num == 0 {
            LossTerms::zeros(&["margin_loss", "beta_reg_loss"])
        } else {
            let d = &self.slots.distance;
            let per_class = self.beta.dims()[0] > 1;
            let beta = if per_class {
                let labels = input.labels.clone().unwrap_or_else(|| {
                    panic!("MarginLoss with one beta per class needs the labels")
                });
                self.beta(&input.embeddings)
                    .select(0, labels.select(0, a.clone()))
            } else {
                self.beta(&input.embeddings).expand([num])
            };
            let mat = self.slots.distance_matrix(input);
            let d_ap = gather_pairs(mat.clone(), a.clone(), p.clone());
            let d_an = gather_pairs(mat, a.clone(), n.clone());
            let pos = relu(d.margin(d_ap, beta.clone()).add_scalar(self.margin));
            let neg = relu(d.margin(beta.clone(), d_an).add_scalar(self.margin));
            let active = |x: &Tensor<B, 1>| mask_to_float(x.clone().greater_elem(0.0), x).sum();
            let divisor = active(&pos) + active(&neg);
            let margin_loss = LossTerm::triplet("margin_loss", pos + neg, a.clone(), p, n)
                .with_divisor(divisor.clone());
            let reg = if !self.learn_beta {
                LossTerm::zero("beta_reg_loss")
            } else if per_class {
                LossTerm::element("beta_reg_loss", beta.mul_scalar(self.nu), a)
                    .with_divisor(divisor)
            } else {
                LossTerm::already_reduced(
                    "beta_reg_loss",
                    self.beta(&input.embeddings).mul_scalar(self.nu),
                )
            };
            LossTerms::new().with(margin_loss).with(reg)
        };
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
    use burn::tensor::Int;
    use pml_core::{IndicesTuple, tensor::float_vec};

    type B = Autodiff<NdArray>;

    fn raw() -> MarginLossConfig {
        MarginLossConfig::new().with_distance(DistanceConfig::Lp(
            pml_distances::LpDistanceConfig::new().with_normalize_embeddings(false),
        ))
    }

    #[test]
    fn hand_checked_value_and_beta_gradient() {
        let device = Default::default();
        // d(a,p) = 1.5, d(a,n) = 1.0, β = 1.2, α = 0.2:
        // pos = [1.5 − 1.2 + 0.2]₊ = 0.5, neg = [1.2 − 1.0 + 0.2]₊ = 0.4; divisor 2 → 0.45;
        // with ν = 0.1: + 0.12. dL/dβ = (−1 + 1)/2 + ν = 0.1.
        let x = Tensor::<B, 2>::from_floats([[0.0], [1.5], [1.0]], &device);
        let t = IndicesTuple::triplets_from_slices(&[0], &[1], &[2], &device);
        let loss = raw().with_learn_beta(true).with_nu(0.1).init::<B>(&device);
        let value = loss.forward(LossInput::unlabeled(x).with_indices(t));
        assert!((value.clone().into_scalar() - 0.57).abs() < 1e-6);
        let grads = value.backward();
        let g = float_vec(loss.beta.val().grad(&grads).unwrap());
        assert!((g[0] - 0.1).abs() < 1e-6, "{g:?}");
    }

    #[test]
    fn per_class_beta_follows_the_anchor_label() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::from_floats([[0.0], [0.1], [5.0], [5.1]], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1], &device);
        let loss = raw().with_num_classes(Some(2)).init::<NdArray>(&device);
        let loss = loss.with_beta(Tensor::from_floats([0.05, 0.5], &device));
        let terms = loss.forward_terms(&LossInput::new(x, labels));
        let l = float_vec(terms.get("margin_loss").unwrap().losses.clone().unwrap());
        // Triplets of anchors 0 and 1 (β = 0.05): pos [0.1 − 0.05 + 0.2]₊ = 0.25, neg 0;
        // anchors 2 and 3 (β = 0.5): pos [0.1 − 0.5 + 0.2]₊ = 0, neg 0.
        let want = [0.25, 0.25, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0];
        assert!(
            l.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5),
            "{l:?}"
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let cfg = MarginLossConfig::new().with_beta(0.9);
        crate::gradcheck::check_gradients(
            &cfg.init(&Default::default()),
            &[0, 0, 1, 1, 2, 2, 0, 1],
            5,
            4,
        );
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(
            &MarginLossConfig::new().init(&Default::default()),
            33,
        );
    }
}
