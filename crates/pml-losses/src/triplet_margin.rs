use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::{TripletsPerAnchor, convert_to_triplets},
    math::softplus,
    rng::SeededRng,
    tensor::gather_pairs,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{all_triplets::TripletHinge, base::LossSlots, regularizers::RegularizerConfig};

/// Configuration of [`TripletMarginLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct TripletMarginLossConfig {
    /// The desired difference between the anchor-negative and anchor-positive distances.
    #[config(default = 0.05)]
    pub margin: f64,
    /// Use the positive-negative distance instead of the anchor-negative one when it is
    /// smaller (the "distance swap" of Balntas et al., BMVC 2016).
    #[config(default = false)]
    pub swap: bool,
    /// Use `softplus` (log-exp) instead of the hinge.
    #[config(default = false)]
    pub smooth_loss: bool,
    /// Triplets used without an indices tuple: `"all"` or a number per anchor, drawn at random.
    #[config(default = "TripletsPerAnchor::All")]
    pub triplets_per_anchor: TripletsPerAnchor,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `AvgNonZeroReducer`).
    #[config(default = "ReducerConfig::avg_non_zero()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
    /// Seed of the triplet sampler used when `triplets_per_anchor` is a number (not in PML,
    /// which uses PyTorch's global generator).
    #[config(default = 0)]
    pub seed: u64,
}

impl TripletMarginLossConfig {
    /// Builds the loss, refusing invalid hyperparameters and reducers that cannot reduce
    /// triplet losses (PML's `PerAnchorReducer`).
    pub fn try_init(&self) -> Result<TripletMarginLoss, PmlError> {
        if !self.margin.is_finite() {
            return Err(PmlError::invalid_argument(
                "margin",
                self.margin,
                "TripletMarginLoss: must be finite",
            ));
        }
        Ok(TripletMarginLoss {
            margin: self.margin,
            swap: self.swap,
            smooth_loss: self.smooth_loss,
            triplets_per_anchor: self.triplets_per_anchor,
            rng: SeededRng::new(self.seed),
            slots: LossSlots::build(
                "TripletMarginLoss",
                &self.distance,
                &self.reducer,
                self.embedding_regularizer.as_ref(),
                self.embedding_reg_weight,
                &[("loss", ReductionType::Triplet)],
            )?,
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> TripletMarginLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The triplet margin loss (Weinberger & Saul, "Distance Metric Learning for Large Margin Nearest
/// Neighbor Classification", JMLR 2009; PML's `TripletMarginLoss`):
///
/// `L(a, p, n) = [d(a, p) − d(a, n) + margin]₊` (signs swapped for similarities), or
/// `softplus(d(a, p) − d(a, n) + margin)` with `smooth_loss`. With `swap`,
/// `d(a, n)` is replaced by `min(d(a, n), d(p, n))`.
///
/// Triplets come from the labels (all of them, or `triplets_per_anchor` random ones per anchor),
/// or from an indices tuple (pairs are combined by anchor into triplets, as PML does). With a
/// reference set, `d(p, n)` for `swap` is measured within the reference set.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct TripletMarginLoss {
    margin: f64,
    swap: bool,
    smooth_loss: bool,
    triplets_per_anchor: TripletsPerAnchor,
    rng: SeededRng,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for TripletMarginLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let [a, p, n] = convert_to_triplets(input, self.triplets_per_anchor, &self.rng);
        let terms = if a.dims()[0] == 0 {
            LossTerms::zeros(&["loss"])
        } else {
            let d = &self.slots.distance;
            let mat = self.slots.distance_matrix(input);
            let ap = gather_pairs(mat.clone(), a.clone(), p.clone());
            let mut an = gather_pairs(mat.clone(), a.clone(), n.clone());
            if self.swap {
                let pn_mat = match &input.reference {
                    None => mat,
                    Some(r) => d.forward(r.embeddings.clone(), None),
                };
                an = d.smallest(an, gather_pairs(pn_mat, p.clone(), n.clone()));
            }
            let violation = d.margin(ap, an).add_scalar(self.margin);
            let losses = if self.smooth_loss {
                softplus(violation)
            } else {
                relu(violation)
            };
            LossTerms::new().with(LossTerm::triplet("loss", losses, a, p, n))
        };
        self.slots.with_regularization(terms, input)
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.slots.reduce(&terms, input)
    }

    /// Without an indices tuple (all triplets) and with a reducer that needs only totals
    /// (mean, sum, average of non-zero, threshold), the triplets are never listed: see
    /// the `all_triplets` module. Otherwise `reduce(forward_terms(input))`.
    fn forward(&self, input: LossInput<B>) -> Tensor<B, 1> {
        let dense = input.indices_tuple.is_none()
            && input.labels.is_some()
            && self.triplets_per_anchor == TripletsPerAnchor::All
            && !(self.swap && input.reference.is_some());
        match self.slots.totals_reduction("loss").filter(|_| dense) {
            Some(rule) => {
                input.validate();
                let hinge = TripletHinge {
                    margin: self.margin,
                    swap: self.swap,
                    smooth: self.smooth_loss,
                };
                let loss = hinge.reduce_all(&self.slots, &input, rule);
                self.slots.plus_regularization(loss, &input)
            }
            None => {
                let terms = self.forward_terms(&input);
                self.reduce(terms, &input)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Int;
    use pml_core::{IndicesTuple, tensor::float_vec};

    type B = Autodiff<NdArray>;

    fn raw() -> TripletMarginLossConfig {
        TripletMarginLossConfig::new().with_distance(DistanceConfig::Lp(
            pml_distances::LpDistanceConfig::new().with_normalize_embeddings(false),
        ))
    }

    #[test]
    fn hand_checked_value_and_gradient() {
        let device = Default::default();
        // a = 0, p = 1, n = 1.2: d(a,p) = 1, d(a,n) = 1.2; margin 0.5 → loss 0.3.
        let x = Tensor::<B, 2>::from_floats([[0.0], [1.0], [1.2]], &device).require_grad();
        let t = IndicesTuple::triplets_from_slices(&[0], &[1], &[2], &device);
        let loss = raw()
            .with_margin(0.5)
            .init()
            .forward(LossInput::unlabeled(x.clone()).with_indices(t));
        assert!((loss.clone().into_scalar() - 0.3).abs() < 1e-6);
        // d/dx = d/dx (|x0-x1| - |x0-x2|) = [-1 + 1, +1, -1]
        let g = float_vec(x.grad(&loss.backward()).unwrap());
        assert!(
            g.iter()
                .zip([0.0, 1.0, -1.0])
                .all(|(a, b)| (a - b).abs() < 1e-5),
            "{g:?}"
        );
    }

    #[test]
    fn swap_uses_the_closer_positive_negative_distance() {
        let device = Default::default();
        // d(a,n) = 2, d(p,n) = 1 → swap uses 1: loss = [1 − 1 + 0.5]₊ = 0.5 instead of 0.
        let x = Tensor::<B, 2>::from_floats([[0.0], [1.0], [2.0]], &device);
        let t = IndicesTuple::triplets_from_slices(&[0], &[1], &[2], &device);
        let input = LossInput::unlabeled(x).with_indices(t);
        let plain = raw()
            .with_margin(0.5)
            .init()
            .forward(input.clone())
            .into_scalar();
        let swap = raw()
            .with_margin(0.5)
            .with_swap(true)
            .init()
            .forward(input)
            .into_scalar();
        assert_eq!(plain, 0.0);
        assert!((swap - 0.5).abs() < 1e-6);
    }

    #[test]
    fn random_triplets_per_anchor_are_seeded() {
        let device = Default::default();
        let x =
            Tensor::<NdArray, 2>::from_floats([[0.0], [0.1], [1.0], [1.1], [3.0], [2.9]], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1, 2, 2], &device);
        let cfg = raw()
            .with_triplets_per_anchor(TripletsPerAnchor::Count(2))
            .with_seed(3);
        let terms = cfg
            .init()
            .forward_terms(&LossInput::new(x.clone(), labels.clone()));
        assert_eq!(
            terms.get("loss").unwrap().losses.as_ref().unwrap().dims(),
            [12]
        );
        let a = cfg
            .init()
            .forward(LossInput::new(x.clone(), labels.clone()))
            .into_scalar();
        let b = cfg.init().forward(LossInput::new(x, labels)).into_scalar();
        assert_eq!(a, b);
    }

    #[test]
    fn per_anchor_reducer_is_refused_as_in_pml() {
        let err = TripletMarginLossConfig::new()
            .with_reducer(ReducerConfig::PerAnchor(
                pml_reducers::PerAnchorReducerConfig::new(),
            ))
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(err.contains("Triplet reduction not supported"), "{err}");
    }

    #[test]
    #[should_panic(expected = "ref_labels is required with ref_emb (shape [3, 1])")]
    fn reference_without_labels_panics() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::zeros([2, 1], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 1], &device);
        let input =
            LossInput::new(x, labels).with_unlabeled_reference(Tensor::zeros([3, 1], &device));
        TripletMarginLossConfig::new().init().forward(input);
    }

    #[test]
    fn nan_embeddings_are_an_error_naming_the_argument() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::from_floats([[0.0], [f32::NAN]], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0], &device);
        let err = TripletMarginLossConfig::new()
            .init()
            .try_forward(LossInput::new(x, labels))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid input `embeddings`: 1 non-finite value"),
            "{err}"
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        let config = TripletMarginLossConfig::new().with_margin(0.3);
        crate::gradcheck::check_gradients(&config.init(), &labels, 5, 1);
        let swap_smooth = config.with_swap(true).with_smooth_loss(true);
        crate::gradcheck::check_gradients(&swap_smooth.init(), &labels, 5, 2);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(
            &TripletMarginLossConfig::new().with_margin(0.2).init(),
            32,
        );
    }
}
