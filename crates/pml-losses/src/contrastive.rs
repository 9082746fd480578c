use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    blocks::block_threads,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::{HingeBlock, HingeTerm, LossSlots, reduce_hinges},
    generic_pair::{pair_distances, pair_mask_tiles},
    regularizers::RegularizerConfig,
};

const TERMS: [(&str, ReductionType); 2] = [
    ("pos_loss", ReductionType::PosPair),
    ("neg_loss", ReductionType::NegPair),
];

/// Configuration of [`ContrastiveLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct ContrastiveLossConfig {
    /// Positive pairs farther apart than this are penalized.
    #[config(default = 0.0)]
    pub pos_margin: f64,
    /// Negative pairs closer than this are penalized.
    #[config(default = 1.0)]
    pub neg_margin: f64,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
    /// The reducer of both terms (PML's default: `AvgNonZeroReducer`).
    #[config(default = "ReducerConfig::avg_non_zero()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl ContrastiveLossConfig {
    /// Builds the loss, refusing invalid hyperparameters and reducers that cannot reduce its
    /// pair terms.
    pub fn try_init(&self) -> Result<ContrastiveLoss, PmlError> {
        for (name, v) in [
            ("pos_margin", self.pos_margin),
            ("neg_margin", self.neg_margin),
        ] {
            if !v.is_finite() {
                return Err(PmlError::invalid_argument(
                    name,
                    v,
                    "ContrastiveLoss: margins must be finite",
                ));
            }
        }
        Ok(ContrastiveLoss {
            pos_margin: self.pos_margin,
            neg_margin: self.neg_margin,
            slots: LossSlots::build(
                "ContrastiveLoss",
                &self.distance,
                &self.reducer,
                self.embedding_regularizer.as_ref(),
                self.embedding_reg_weight,
                &TERMS,
            )?,
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> ContrastiveLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The contrastive loss (Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning an
/// Invariant Mapping", CVPR 2006; PML's `ContrastiveLoss`):
///
/// `L_pos(a, p) = [d(a, p) − m_pos]₊` for positive pairs and
/// `L_neg(a, n) = [m_neg − d(a, n)]₊` for negative pairs (with the signs swapped for
/// similarities), reduced separately as the terms `pos_loss` and `neg_loss` and summed.
///
/// Pairs come from the labels (all of them) or from an indices tuple (triplets are split into
/// pairs). As in PML, the loss is zero when every pair list has at most one element.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct ContrastiveLoss {
    pos_margin: f64,
    neg_margin: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for ContrastiveLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let d = &self.slots.distance;
        let terms = match pair_distances(&self.slots, input) {
            None => LossTerms::zeros(&["pos_loss", "neg_loss"]),
            Some(pairs) => {
                let pos = match pairs.pos {
                    Some(dist) => {
                        let losses: Tensor<B, 1> = relu(d.margin_to(dist, self.pos_margin));
                        LossTerm::pos_pair("pos_loss", losses, pairs.a1, pairs.p)
                    }
                    None => LossTerm::zero("pos_loss"),
                };
                let neg = match pairs.neg {
                    Some(dist) => {
                        let losses = relu(Distance::<B>::margin_from(d, self.neg_margin, dist));
                        LossTerm::neg_pair("neg_loss", losses, pairs.a2, pairs.n)
                    }
                    None => LossTerm::zero("neg_loss"),
                };
                LossTerms::new().with(pos).with(neg)
            }
        };
        self.slots.with_regularization(terms, input)
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.slots.reduce(&terms, input)
    }

    /// Without an indices tuple (all pairs) and with reducers that need only totals (mean,
    /// sum, average of non-zero, threshold), the pairs are never listed: both terms are reduced
    /// over the masked distance matrix, tile by tile, with the hinge and its derivative
    /// evaluated off the autodiff graph (`reduce_hinges`). Without a reference set the matrix
    /// and its masks are symmetric, so its upper triangle (`pair_mask_tiles`) is walked,
    /// off-diagonal tiles counting twice: about half the work. Otherwise
    /// `reduce(forward_terms(input))`.
    fn forward(&self, input: LossInput<B>) -> Tensor<B, 1> {
        let rules = (
            self.slots.totals_reduction("pos_loss"),
            self.slots.totals_reduction("neg_loss"),
        );
        let (Some(pos_rule), Some(neg_rule), None) = (rules.0, rules.1, &input.indices_tuple)
        else {
            let terms = self.forward_terms(&input);
            return self.reduce(terms, &input);
        };
        input.validate();
        let d = &self.slots.distance;
        let (blocks, counts) = pair_mask_tiles(&self.slots, &input, |masks| {
            let pos = d.margin_to(masks.mat().clone(), self.pos_margin);
            let neg = d.margin_from(self.neg_margin, masks.mat().clone());
            let hinges = [
                HingeBlock::new(pos_rule, pos, masks.pos.clone(), masks.weight),
                HingeBlock::new(neg_rule, neg, masks.neg.clone(), masks.weight),
            ];
            (masks.into_link(), hinges)
        })
        .expect("labels without indices tuple");
        let slope = Distance::<B>::margin_slope(d);
        let terms = [
            HingeTerm {
                rule: pos_rule,
                slope,
            },
            HingeTerm {
                rule: neg_rule,
                slope: -slope,
            },
        ];
        let threads = block_threads::<B>(&input.embeddings.device());
        let loss = reduce_hinges(terms, blocks, threads);
        self.slots.plus_regularization(counts.gated(loss), &input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Int;
    use pml_core::tensor::float_vec;

    type B = Autodiff<NdArray>;

    fn raw() -> ContrastiveLossConfig {
        ContrastiveLossConfig::new().with_distance(DistanceConfig::Lp(
            pml_distances::LpDistanceConfig::new().with_normalize_embeddings(false),
        ))
    }

    #[test]
    fn hand_checked_value_and_gradient() {
        let device = Default::default();
        // Points on a line: 0 and 0.5 share a label, 2 is alone. Distances: d01 = 0.5,
        // d02 = 2, d12 = 1.5. Positive pairs (0,1), (1,0) lose 0.5 each (pos_margin 0); negative
        // pairs lose [1 - d]₊ = 0. AvgNonZero: pos 0.5, neg 0.
        let x = Tensor::<B, 2>::from_floats([[0.0], [0.5], [2.0]], &device).require_grad();
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = raw().init().forward(LossInput::new(x.clone(), labels));
        assert!((loss.clone().into_scalar() - 0.5).abs() < 1e-6);
        let g = float_vec(x.grad(&loss.backward()).unwrap());
        // d/dx0 of (|x0-x1| + |x1-x0|)/2 = -1, d/dx1 = +1.
        assert!(
            (g[0] + 1.0).abs() < 1e-5 && (g[1] - 1.0).abs() < 1e-5 && g[2].abs() < 1e-6,
            "{g:?}"
        );
    }

    #[test]
    fn no_pairs_gives_a_zero_loss_with_a_graph() {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats([[0.0], [1.0]], &device).require_grad();
        let labels = Tensor::<B, 1, Int>::from_ints([0, 1], &device);
        let loss = raw().init().forward(LossInput::new(x.clone(), labels));
        assert_eq!(loss.clone().into_scalar(), 0.0);
        assert_eq!(float_vec(x.grad(&loss.backward()).unwrap()), vec![0.0, 0.0]);
    }

    #[test]
    #[should_panic(expected = "`labels`: length 3 differs from the number of embeddings 2")]
    fn labels_of_the_wrong_length_panic_with_shapes() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::zeros([2, 4], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 1, 1], &device);
        ContrastiveLossConfig::new()
            .init()
            .forward(LossInput::new(x, labels));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        let config = ContrastiveLossConfig::new()
            .with_pos_margin(0.1)
            .with_neg_margin(1.2);
        crate::gradcheck::check_gradients(&config.init(), &labels, 5, 1);
        let cosine = config
            .with_distance(DistanceConfig::cosine())
            .with_neg_margin(0.3);
        crate::gradcheck::check_gradients(&cosine.init(), &labels, 5, 2);
    }

    #[test]
    fn dense_reduction_equals_the_listed_pairs() {
        use crate::gradcheck::{check_fast_path, uniform};
        use pml_reducers::{SumReducerConfig, ThresholdReducerConfig};
        let labels = [0, 0, 1, 1, 1, 2, 0, 3, 3, 1, 2, 4];
        let x = uniform(labels.len() * 4, 4);
        let reducers = [
            ReducerConfig::avg_non_zero(),
            ReducerConfig::mean(),
            ReducerConfig::Sum(SumReducerConfig::new()),
            ReducerConfig::Threshold(ThresholdReducerConfig::new().with_high(Some(0.5))),
        ];
        for reducer in reducers {
            for distance in [DistanceConfig::lp(), DistanceConfig::cosine()] {
                let config = ContrastiveLossConfig::new()
                    .with_pos_margin(0.2)
                    .with_neg_margin(0.9)
                    .with_distance(distance)
                    .with_reducer(reducer.clone());
                check_fast_path(&config.init(), &x, &labels, None);
                let r = uniform(5 * 4, 6);
                check_fast_path(&config.init(), &x, &labels, Some((&r, &[0, 1, 7, 1, 2])));
            }
        }
        // Margins met exactly (integer distances), and batches PML gives a zero loss.
        let line = [0.0, 1.0, 2.0, 1.0, 3.0];
        let exact = raw().with_pos_margin(1.0).with_neg_margin(2.0).init();
        check_fast_path(&exact, &line, &[0, 0, 1, 1, 0], None);
        check_fast_path(&exact, &line[..2], &[0, 1], None);
    }

    #[test]
    fn dense_reduction_in_several_blocks_equals_the_listed_pairs() {
        use crate::gradcheck::{check_fast_path, uniform};
        // 1030² entries are more than one block of anchors (2^20 entries).
        let labels: Vec<i64> = (0..1030).map(|i| (i * 7 % 60) as i64).collect();
        let x = uniform(labels.len() * 2, 8);
        let config = ContrastiveLossConfig::new()
            .with_pos_margin(0.1)
            .with_neg_margin(0.8);
        check_fast_path(&config.init(), &x, &labels, None);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(&ContrastiveLossConfig::new().init(), 31);
    }
}
