use burn::{
    config::Config,
    module::Module,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType, tensor::int_vec,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::{convert_to_weights, refuse_reference, require_cosine, require_labels},
    regularizers::RegularizerConfig,
    soft_rank::{SoftRank, attach_row_gradient},
};

const NAME: &str = "SmoothAPLoss";
const TERMS: [(&str, ReductionType); 1] = [("ap_loss", ReductionType::Element)];

/// Configuration of [`SmoothAPLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct SmoothAPLossConfig {
    /// Temperature of the sigmoid that relaxes the ranking indicator.
    #[config(default = 0.01)]
    pub temperature: f64,
    /// The similarity: must be `CosineSimilarity` (PML's default and only choice).
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
}

impl SmoothAPLossConfig {
    /// Builds the loss, refusing a non-positive `temperature`, a distance other than
    /// `CosineSimilarity` (as PML's `assert_distance_type`) and invalid slots.
    pub fn try_init(&self) -> Result<SmoothAPLoss, PmlError> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(PmlError::invalid_argument(
                "temperature",
                self.temperature,
                "SmoothAPLoss: must be positive and finite",
            ));
        }
        require_cosine(&self.distance, NAME)?;
        Ok(SmoothAPLoss {
            temperature: self.temperature,
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
    pub fn init(&self) -> SmoothAPLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Smooth-AP (Brown, Xie, Kalogeiton & Zisserman, "Smooth-AP: Smoothing the Path Towards
/// Large-Scale Image Retrieval", ECCV 2020; PML's `SmoothAPLoss`): average precision with the
/// ranking indicator relaxed by a sigmoid of temperature `τ`.
///
/// With cosine similarities `s` and `σ_τ(x) = σ(x / τ)`, the rank of `b` in `a`'s list and
/// within `a`'s group `P(a)` are
///
/// `R(a, b) = 1 + Σ_{c ≠ b} σ_τ(s_ac − s_ab)`, `R⁺(a, b) = 1 + Σ_{c ∈ P(a), c ≠ b} σ_τ(s_ac − s_ab)`,
///
/// and `L_a = (1 − (1/|P(a)|) Σ_{b ∈ P(a)} R⁺(a, b) / R(a, b)) · w_a` (PML's miner weight `w`),
/// term `ap_loss`, element reduction.
///
/// Every label must occur equally often (PML's requirement, e.g. with an `MPerClassSampler`).
/// **As in PML 2.9**, the groups `P(a)` are consecutive blocks of the batch, of size
/// `n / (n / U)` for `U` distinct labels (which is `U` itself, not the number of samples per
/// label): the labels only set the block size, so the loss is invariant to permutations of the
/// blocks and within blocks, not to arbitrary ones. This reproduces PML's numbers; with
/// `U` = samples per label and the batch sorted by label, it is the paper's loss.
///
/// The `[n, |P|, n]` sigmoid terms are computed in chunks of anchors, forward and backward
/// (see the `soft_rank` module), so memory stays bounded for large batches.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels, with a reference set, or
/// when the labels do not all occur equally often (PML's `ValueError`).
#[derive(Module, Clone, Debug)]
pub struct SmoothAPLoss {
    temperature: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for SmoothAPLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = require_labels(input, NAME);
        refuse_reference(input, NAME);
        let n = labels.dims()[0];
        // PML reads the label counts back to check them; so does this.
        let mut host = int_vec(labels);
        host.sort_unstable();
        let mut counts: Vec<usize> = Vec::new();
        for (i, l) in host.iter().enumerate() {
            if i == 0 || host[i - 1] != *l {
                counts.push(0);
            }
            *counts.last_mut().expect("pushed above") += 1;
        }
        if counts.iter().any(|&c| c != counts[0]) {
            panic!(
                "{NAME}: all classes must have the same number of elements in the labels; the \
                 given labels have the following numbers of elements: {counts:?} (use an \
                 MPerClassSampler)"
            );
        }
        let terms = if n == 0 {
            LossTerms::zeros(&["ap_loss"])
        } else {
            self.terms(input, n, counts.len())
        };
        self.slots.with_regularization(terms, input)
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.slots.reduce(&terms, input)
    }
}

impl SmoothAPLoss {
    fn terms<B: Backend>(&self, input: &LossInput<B>, n: usize, unique: usize) -> LossTerms<B> {
        let per_class = n / unique;
        let g = n / per_class;
        let device = input.embeddings.device();
        let s = self.slots.distance_matrix(input);
        let rank = SoftRank {
            temperature: self.temperature,
            clamp: false,
        };
        // Candidate columns of anchor a: its block, a - a % g + 0..g.
        let columns = |rows: std::ops::Range<usize>| -> Tensor<B, 2, Int> {
            let c = rows.end - rows.start;
            let starts: Vec<i64> = rows.map(|a| (a - a % g) as i64).collect();
            let starts = pml_core::tensor::int_tensor::<B>(&starts, &device).reshape([c, 1]);
            let offsets = Tensor::<B, 1, Int>::arange(0..g as i64, &device).reshape([1, g]);
            starts.expand([c, g]) + offsets.expand([c, g])
        };
        let all_columns = Tensor::<B, 1, Int>::arange(0..n as i64, &device);
        // Kernels: c ≠ b (all ranks), and c ≠ b with c in a's block (ranks within the block).
        let not_b = |cols: &Tensor<B, 2, Int>| {
            let c = cols.dims()[0];
            let b = cols.clone().reshape([c, g, 1]).expand([c, g, n]);
            let all = all_columns.clone().reshape([1, 1, n]).expand([c, g, n]);
            b.not_equal(all)
        };
        let like = s.clone().reshape([n, n, 1]).slice([0..1, 0..1, 0..1]);
        let to_float = |mask: burn::tensor::Tensor<B, 3, burn::tensor::Bool>| {
            let shape = mask.dims();
            like.clone()
                .ones_like()
                .expand(shape)
                .mask_fill(mask.bool_not(), 0.0)
        };
        let all_kernel = |rows: std::ops::Range<usize>| {
            let cols = columns(rows);
            let kernel = to_float(not_b(&cols));
            (cols, kernel)
        };
        let block_kernel = |rows: std::ops::Range<usize>| {
            let c = rows.end - rows.start;
            let cols = columns(rows.clone());
            let starts = cols
                .clone()
                .slice([0..c, 0..1])
                .reshape([c, 1, 1])
                .expand([c, g, n]);
            let all = all_columns.clone().reshape([1, 1, n]).expand([c, g, n]);
            let in_block = all
                .clone()
                .greater_equal(starts.clone())
                .bool_and(all.lower(starts.add_scalar(g as i64)));
            let kernel = to_float(not_b(&cols).bool_and(in_block));
            (cols, kernel)
        };
        let all_rank = rank.ranks(&s, g, &all_kernel).add_scalar(1.0);
        let pos_rank = rank.ranks(&s, g, &block_kernel).add_scalar(1.0);
        let weights = convert_to_weights(input.indices_tuple.as_ref(), &input.embeddings, false);
        let ratio = pos_rank.clone() / all_rank.clone();
        let ap = ratio.clone().sum_dim(1).reshape([n]).div_scalar(g as f64);
        let value = ap.neg().add_scalar(1.0) * weights.clone();
        // ∂L_a/∂R⁺ = −w / (g R), ∂L_a/∂R = w R⁺ / (g R²).
        let w = weights.detach().reshape([n, 1]).div_scalar(g as f64);
        let d_pos = (w.clone() / all_rank.clone()).neg();
        let d_all = w * ratio / all_rank;
        let grad = rank.backprop(&s, d_pos, &block_kernel) + rank.backprop(&s, d_all, &all_kernel);
        let losses = attach_row_gradient(value, grad, s);
        let indices = Tensor::<B, 1, Int>::arange(0..n as i64, &device);
        LossTerms::new().with(LossTerm::element("ap_loss", losses, indices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Two labels, two samples each: blocks of size 2, {0, 1} and {2, 3}. x0 = x1 = e1,
        // x2 = x3 = e2, so s = 1 within blocks and 0 across. For anchor 0 and b ∈ {0, 1}:
        // R⁺ = 1 + σ(0) = 1.5; R = 1 + σ(0) + 2σ(−1/τ) ≈ 1.5 (τ = 0.01): AP = 1, loss 0.
        let x =
            Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1, 1], &device);
        let loss = SmoothAPLossConfig::new()
            .init()
            .forward(LossInput::new(x.clone(), labels.clone()))
            .into_scalar() as f64;
        assert!(loss.abs() < 1e-6, "{loss}");
        // With τ = 1: R⁺ = 1.5, R = 1.5 + 2σ(−1) → AP = 1.5 / (1.5 + 2σ(−1)).
        let loss = SmoothAPLossConfig::new()
            .with_temperature(1.0)
            .init()
            .forward(LossInput::new(x, labels))
            .into_scalar() as f64;
        let sig = 1.0 / (1.0 + 1f64.exp());
        let want = 1.0 - 1.5 / (1.5 + 2.0 * sig);
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    #[should_panic(expected = "all classes must have the same number of elements")]
    fn unequal_class_sizes_panic_as_in_pml() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::zeros([3, 2], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1], &device);
        SmoothAPLossConfig::new()
            .init()
            .forward(LossInput::new(x, labels));
    }

    #[test]
    fn invariant_to_permuting_blocks_and_within_blocks() {
        // 3 labels × 4 samples: PML's blocks have size 3 (see the type's docs). Permute the
        // four blocks, and the rows inside each block.
        let labels = [0, 1, 2, 2, 0, 1, 1, 2, 0, 0, 1, 2];
        let block_order = [2, 0, 3, 1];
        let within = [[1, 2, 0], [0, 2, 1], [2, 1, 0], [1, 0, 2]];
        let perm: Vec<usize> = block_order
            .iter()
            .zip(within)
            .flat_map(|(&b, w)| w.map(|i| 3 * b + i))
            .collect();
        let loss = SmoothAPLossConfig::new().with_temperature(0.1).init();
        crate::proptests::check_permutation(&loss, &labels, &perm);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = [0, 0, 1, 1, 2, 2, 0, 1, 2];
        let config = SmoothAPLossConfig::new().with_temperature(0.2);
        crate::gradcheck::check_gradients(&config.init(), &labels, 5, 1);
    }

    #[test]
    #[ignore = "slow in debug builds: n = 1024, forward and backward"]
    fn large_batch_forward_and_backward() {
        // Run alone under `/usr/bin/time -v` to see the peak memory (chunked: well under 2 GiB).
        let n = 1024;
        let device = Default::default();
        let labels: Vec<i64> = (0..n as i64).map(|i| i % 64).collect();
        let values = crate::proptests::random_values(n, 64, 1);
        let x = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(values, [n, 64]), &device)
            .require_grad();
        let loss = SmoothAPLossConfig::new().init().forward(LossInput::new(
            x.clone(),
            pml_core::tensor::int_tensor(&labels, &device),
        ));
        assert!(x.grad(&loss.backward()).is_some());
    }
}
