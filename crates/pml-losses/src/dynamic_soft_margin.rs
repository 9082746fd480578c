use std::sync::Mutex;

use burn::{
    config::Config,
    module::Module,
    tensor::{IndexingUpdateOp, Int, Tensor, TensorData, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::{TripletsPerAnchor, convert_to_triplets},
    rng::SeededRng,
    tensor::{diagonal, float_vec, gather_pairs},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::{finite, require_normalized_l2},
    regularizers::RegularizerConfig,
};

const NAME: &str = "DynamicSoftMarginLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::AlreadyReduced)];

/// Configuration of [`DynamicSoftMarginLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct DynamicSoftMarginLossConfig {
    /// Smallest significant value of `d_pos − d_neg`; the histogram covers
    /// `[min_val, −min_val]`.
    #[config(default = -2.0)]
    pub min_val: f64,
    /// Number of histogram bins.
    #[config(default = 10)]
    pub num_bins: usize,
    /// Weight of the current batch's histogram in the running one.
    #[config(default = 0.01)]
    pub momentum: f64,
    /// The distance: must be `LpDistance` with `p = 2` and normalized embeddings (PML's
    /// default: `LpDistance()`).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `MeanReducer`; the loss is already reduced).
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl DynamicSoftMarginLossConfig {
    /// Builds the loss with an empty histogram, refusing `num_bins = 0`, a non-negative or
    /// non-finite `min_val`, a `momentum` outside `[0, 1]`, a distance other than normalized
    /// `LpDistance(p=2)` (as PML's `assert_distance_type`) and invalid slots.
    pub fn try_init(&self) -> Result<DynamicSoftMarginLoss, PmlError> {
        if self.num_bins == 0 {
            return Err(PmlError::invalid_argument(
                "num_bins",
                0,
                "DynamicSoftMarginLoss: must be positive",
            ));
        }
        finite(NAME, "min_val", self.min_val)?;
        if self.min_val == 0.0 {
            return Err(PmlError::invalid_argument(
                "min_val",
                self.min_val,
                "DynamicSoftMarginLoss: must be non-zero (the bins have width 2|min_val|/num_bins)",
            ));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(PmlError::invalid_argument(
                "momentum",
                self.momentum,
                "DynamicSoftMarginLoss: must be in [0, 1]",
            ));
        }
        require_normalized_l2(&self.distance, None, NAME)?;
        Ok(DynamicSoftMarginLoss {
            min_val: self.min_val,
            num_bins: self.num_bins,
            delta: 2.0 * self.min_val.abs() / self.num_bins as f64,
            momentum: self.momentum,
            hist: RunningHistogram::new(self.num_bins),
            rng: SeededRng::new(0),
            slots: LossSlots::build(
                NAME,
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
    pub fn init(&self) -> DynamicSoftMarginLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The running histogram of [`DynamicSoftMarginLoss`] (PML's `hist_`), on the host: `num_bins`
/// values. Cloning the loss copies it.
#[derive(Debug)]
struct RunningHistogram {
    values: Mutex<Vec<f64>>,
}

impl RunningHistogram {
    fn new(num_bins: usize) -> Self {
        Self {
            values: Mutex::new(vec![0.0; num_bins]),
        }
    }

    fn get(&self) -> Vec<f64> {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, values: Vec<f64>) {
        *self.values.lock().unwrap_or_else(|e| e.into_inner()) = values;
    }
}

impl Clone for RunningHistogram {
    fn clone(&self) -> Self {
        Self {
            values: Mutex::new(self.get()),
        }
    }
}

/// The dynamic soft margin loss (Zhang & Rusinkiewicz, "Learning Local Descriptors with a
/// CDF-Based Dynamic Soft Margin", ICCV 2019; PML's `DynamicSoftMarginLoss`).
///
/// For each triplet (all of them from the labels, or the indices tuple's) `x = d(a, p) − d(a, n)`;
/// without labels, row `i` of the embeddings and of `ref_emb` form the positive pair and the
/// hardest negative is the smallest off-diagonal distance in row or column `i` (PML's
/// `compute_loss_without_labels`). A running histogram `h` of `x` over `num_bins` bins of
/// width `Δ = 2|min_val| / num_bins` starting at `min_val` is updated with momentum (linear
/// interpolation between neighbouring bins, then normalized; the first batch replaces it), and
///
/// `L = mean_x CDF_h(bin(x)) · x`,
///
/// one already-reduced term `loss`; zero without triplets.
///
/// **Fixed PML defect:** PML keeps `hist_` attached to the autograd graph, so a second
/// `backward` after another call fails. Here the gradient flows through the current batch's
/// contribution to the histogram (as in PML's first call, so single-call values and gradients
/// match PML) but the stored histogram is detached. Values outside the histogram's range
/// (where PML fails with an index error) go to the first or last bin. The histogram is kept on
/// the host: each call reads `num_bins` values back.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]` (optional), optional reference `[m, d]` (with labels
///   `[m]` when labels are given)
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or with labels and a reference set without
/// labels.
#[derive(Module, Clone, Debug)]
pub struct DynamicSoftMarginLoss {
    min_val: f64,
    num_bins: usize,
    delta: f64,
    momentum: f64,
    hist: RunningHistogram,
    rng: SeededRng,
    slots: LossSlots,
}

impl DynamicSoftMarginLoss {
    /// The running histogram (PML's `hist_`), `num_bins` values summing to 1 once a batch has
    /// been seen (all zeros before).
    pub fn histogram(&self) -> Vec<f64> {
        self.hist.get()
    }

    /// `d_pos − d_neg` per row without labels (PML's `compute_loss_without_labels`).
    fn without_labels<B: Backend>(&self, input: &LossInput<B>) -> Tensor<B, 1> {
        let mat = self.slots.distance_matrix(input);
        let [r, c] = mat.dims();
        let (short, long) = (r.min(c), r.max(c));
        let (device, dtype) = (mat.device(), mat.dtype());
        let square = mat.clone().slice([0..short, 0..short]);
        let eye = diagonal([short, short], 0, &device);
        let diag = square
            .mask_fill(eye.bool_not(), 0.0)
            .sum_dim(1)
            .reshape([short]);
        let pad = |t: Tensor<B, 1>, len: usize| -> Tensor<B, 1> {
            if len == long {
                t
            } else {
                let zeros = Tensor::<B, 1>::zeros([long - len], (&device, dtype));
                Tensor::cat(vec![t, zeros], 0)
            }
        };
        let d_pos = pad(diag, short);
        let on_diagonal = {
            let rows = Tensor::<B, 1, Int>::arange(0..r as i64, &device)
                .reshape([r, 1])
                .expand([r, c]);
            let cols = Tensor::<B, 1, Int>::arange(0..c as i64, &device)
                .reshape([1, c])
                .expand([r, c]);
            rows.equal(cols)
        };
        let masked = mat.mask_fill(on_diagonal, f64::INFINITY);
        let min_a = pad(masked.clone().min_dim(0).reshape([c]), c);
        let min_p = pad(masked.min_dim(1).reshape([r]), r);
        d_pos - min_a.min_pair(min_p)
    }

    /// `d(a, p) − d(a, n)` per triplet (PML's `compute_loss_with_labels`).
    fn with_labels<B: Backend>(&self, input: &LossInput<B>) -> Option<Tensor<B, 1>> {
        let [a, p, n] = convert_to_triplets(input, TripletsPerAnchor::All, &self.rng);
        if a.dims()[0] == 0 {
            return None;
        }
        let mat = self.slots.distance_matrix(input);
        Some(gather_pairs(mat.clone(), a.clone(), p) - gather_pairs(mat, a, n))
    }
}

impl<B: Backend> MetricLoss<B> for DynamicSoftMarginLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let data = match input.labels {
            None => Some(self.without_labels(input)),
            Some(_) => self.with_labels(input),
        };
        let terms = match data.filter(|d| d.dims()[0] > 0) {
            None => LossTerms::zeros(&["loss"]),
            Some(data) => {
                let device = data.device();
                let nb = self.num_bins;
                let old = self.hist.get();
                let momentum = if old.iter().sum::<f64>() != 0.0 {
                    self.momentum
                } else {
                    1.0
                };
                let old =
                    Tensor::<B, 1>::from_data(TensorData::new(old, [nb]), (&device, data.dtype()));
                let pos = data.clone().sub_scalar(self.min_val).div_scalar(self.delta);
                let floor = pos.clone().detach().floor();
                let frac = pos - floor.clone();
                let lower: Tensor<B, 1, Int> = floor.clamp(0.0, (nb - 1) as f64).int();
                let upper = lower.clone().add_scalar(1).clamp_max(nb as i64 - 1);
                let hist = old
                    .mul_scalar(1.0 - momentum)
                    .scatter(
                        0,
                        lower.clone(),
                        frac.clone().neg().add_scalar(1.0).mul_scalar(momentum),
                        IndexingUpdateOp::Add,
                    )
                    .scatter(0, upper, frac.mul_scalar(momentum), IndexingUpdateOp::Add);
                let hist = hist.clone() / hist.sum();
                self.hist.set(float_vec(hist.clone().detach()));
                let cdf = hist.cumsum(0);
                let loss = (cdf.select(0, lower) * data).mean();
                LossTerms::new().with(LossTerm::already_reduced("loss", loss))
            }
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
    use pml_core::IndicesTuple;

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value_and_histogram() {
        let device = Default::default();
        // One triplet of unit vectors: a = e1, p at distance 0.4, n at distance 1 (chord
        // 2 sin(θ/2)) → x = 0.4 − 1 = −0.6. Bins of width 0.4 from −2: position 3.5 →
        // h = (e₃ + e₄)/2, CDF(3) = 0.5 → L = 0.5 · (−0.6) = −0.3.
        let unit = |chord: f32| {
            let theta = 2.0 * (chord / 2.0).asin();
            [theta.cos(), theta.sin()]
        };
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], unit(0.4), unit(1.0)], &device);
        let t = IndicesTuple::triplets_from_slices(&[0], &[1], &[2], &device);
        let loss = DynamicSoftMarginLossConfig::new().init();
        let input =
            LossInput::new(x, Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device)).with_indices(t);
        let value = loss.forward(input.clone()).into_scalar() as f64;
        assert!((value + 0.3).abs() < 1e-5, "{value}");
        let h = loss.histogram();
        assert!(
            (h[3] - 0.5).abs() < 1e-5 && (h[4] - 0.5).abs() < 1e-5,
            "{h:?}"
        );
        // Second call: momentum 0.01 on the same data keeps h.
        let again = loss.forward(input).into_scalar() as f64;
        assert!((again + 0.3).abs() < 1e-5, "{again}");
    }

    #[test]
    fn a_second_backward_works() {
        // PML's defect: the histogram stays in the graph and the second backward fails.
        let device = Default::default();
        let loss = DynamicSoftMarginLossConfig::new().init();
        let labels = [0, 0, 1, 1, 2, 2];
        for seed in 0..2 {
            let values = crate::proptests::random_values(6, 4, seed);
            let x =
                Tensor::<B, 2>::from_data(TensorData::new(values, [6, 4]), &device).require_grad();
            let l = loss.forward(LossInput::new(
                x.clone(),
                Tensor::<B, 1, Int>::from_ints(labels, &device),
            ));
            assert!(x.grad(&l.backward()).is_some());
        }
    }

    #[test]
    fn without_labels_uses_the_hardest_negative() {
        let device = Default::default();
        // Unit vectors: x0 = e1, x1 = −e1; r0, r1 at 60° from x0, x1 (so d_pos = 1 for both);
        // off-diagonal distances are both 2 cos 30° = √3, the hardest negatives. x = 1 − √3 for
        // both rows, at position p = (x + 2)/0.4 between bins 3 and 4: h = (4 − p) e₃ +
        // (p − 3) e₄, CDF(3) = 4 − p → L = (4 − p) · x.
        let (c, s) = (0.5f32, 3f32.sqrt() / 2.0);
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [-1.0, 0.0]], &device);
        let r = Tensor::<B, 2>::from_floats([[c, s], [-c, -s]], &device);
        let value = DynamicSoftMarginLossConfig::new()
            .init()
            .forward(LossInput::unlabeled(x).with_unlabeled_reference(r))
            .into_scalar() as f64;
        let xv = 1.0 - 3f64.sqrt();
        let p = (xv + 2.0) / 0.4;
        let want = (4.0 - p) * xv;
        assert!((value - want).abs() < 1e-5, "{value} vs {want}");
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        // A fresh loss per call: the running histogram is state.
        let labels = [0, 1, 2, 0, 1, 2, 0, 3, 1];
        let perm = crate::proptests::shuffled(labels.len(), 7);
        let d = 6;
        for seed in 0..3 {
            let values = crate::proptests::random_values(labels.len(), d, 100 + seed);
            let identity: Vec<usize> = (0..labels.len()).collect();
            let config = DynamicSoftMarginLossConfig::new();
            let a = crate::proptests::loss_of(&config.init(), &values, &labels, d, &identity);
            let b = crate::proptests::loss_of(&config.init(), &values, &labels, d, &perm);
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // A fresh loss per evaluation would be needed for a stateful loss; with momentum 1
        // every call replaces the histogram, so repeated calls give the same function.
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        let config = DynamicSoftMarginLossConfig::new().with_momentum(1.0);
        crate::gradcheck::check_gradients(&config.init(), &labels, 5, 1);
    }
}
