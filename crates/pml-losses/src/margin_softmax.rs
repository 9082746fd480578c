//! PML's `LargeMarginSoftmaxLoss` machinery, shared by [`LargeMarginSoftmaxLoss`],
//! [`SphereFaceLoss`], [`ArcFaceLoss`], [`CosFaceLoss`] and [`SubCenterArcFaceLoss`]: a
//! softmax cross entropy over class logits `cos θ_ic = s(x_i, w_c)` (cosine similarity to the
//! columns of `W`), where the target class's cosine is replaced by a margin-modified one, then
//! scaled.
//!
//! [`LargeMarginSoftmaxLoss`]: crate::LargeMarginSoftmaxLoss
//! [`SphereFaceLoss`]: crate::SphereFaceLoss
//! [`ArcFaceLoss`]: crate::ArcFaceLoss
//! [`CosFaceLoss`]: crate::CosFaceLoss
//! [`SubCenterArcFaceLoss`]: crate::SubCenterArcFaceLoss

use std::f64::consts::PI;

use burn::{
    module::Param,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{
    Distance, GramForm, GramInputs, LossInput, LossTerm, LossTerms, PmlError, ReductionType,
    blocks::{BLOCK_ENTRIES, block_threads},
    labels::pairwise_equal,
    math::{lp_norm_rows, masked_logsumexp_with_slopes},
    tensor::{constant, value_with_gradient},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::{LossSlots, WeightRegularization},
    class_weights::{check_width, expect_batch, normal, one_hot_like, param, positive, value_like},
    common::{convert_to_weights, cross_entropy_rows, finite, require_cosine},
    regularizers::RegularizerConfig,
};

const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::Element)];

/// How the target class's cosine `cos θ` is modified.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TargetMargin {
    /// L-Softmax and SphereFace: `ψ(θ) = (−1)^k cos(mθ) − 2k` with `k = ⌊θ m / π⌋`, `cos(mθ)`
    /// by the multiple-angle formula (the paper's equations 6 and 7).
    Multiplicative(usize),
    /// ArcFace: `cos(θ + m)` (`m` in radians), `cos θ − m sin m` where `θ > π − m`.
    Additive(f64),
    /// CosFace: `cos θ − m`.
    Cosine(f64),
}

/// How the logits are scaled.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LogitScale {
    /// `‖x_i‖ ‖w_c‖ s` (L-Softmax).
    Magnitudes,
    /// `‖x_i‖₂ s` (SphereFace).
    EmbeddingNorm,
    /// `s` (ArcFace, CosFace).
    Constant,
}

/// The hyperparameters and slots of one of these losses (a Burn module constant).
#[derive(Clone, Debug)]
pub(crate) struct MarginSoftmax {
    name: &'static str,
    pub num_classes: usize,
    pub embedding_size: usize,
    sub_centers: usize,
    margin: TargetMargin,
    scaling: LogitScale,
    scale: f64,
    /// The `p` of the distance's norm (PML's `distance.get_norm`).
    norm_p: f64,
    slots: LossSlots,
    weight_reg: WeightRegularization,
}

/// What [`MarginSoftmax::build`] needs from a loss's config.
pub(crate) struct MarginSoftmaxParts<'a> {
    pub name: &'static str,
    pub num_classes: usize,
    pub embedding_size: usize,
    pub sub_centers: usize,
    pub margin: TargetMargin,
    pub scaling: LogitScale,
    pub scale: f64,
    pub distance: &'a DistanceConfig,
    pub reducer: &'a ReducerConfig,
    pub embedding_regularizer: Option<&'a RegularizerConfig>,
    pub embedding_reg_weight: f64,
    pub weight_regularizer: Option<&'a RegularizerConfig>,
    pub weight_reg_weight: f64,
}

impl MarginSoftmax {
    /// Validates and builds (PML asserts `CosineSimilarity` for the whole family).
    pub fn build(parts: MarginSoftmaxParts<'_>) -> Result<Self, PmlError> {
        let name = parts.name;
        positive(name, "num_classes", parts.num_classes)?;
        positive(name, "embedding_size", parts.embedding_size)?;
        positive(name, "sub_centers", parts.sub_centers)?;
        finite(name, "scale", parts.scale)?;
        match parts.margin {
            TargetMargin::Multiplicative(0) => {
                return Err(PmlError::invalid_argument(
                    "margin",
                    0,
                    format!("{name}: the angular margin must be a positive integer"),
                ));
            }
            TargetMargin::Additive(m) | TargetMargin::Cosine(m) => finite(name, "margin", m)?,
            TargetMargin::Multiplicative(_) => {}
        }
        require_cosine(parts.distance, name)?;
        let norm_p = match parts.distance {
            DistanceConfig::Cosine(c) => c.p,
            _ => 2.0,
        };
        Ok(Self {
            name,
            num_classes: parts.num_classes,
            embedding_size: parts.embedding_size,
            sub_centers: parts.sub_centers,
            margin: parts.margin,
            scaling: parts.scaling,
            scale: parts.scale,
            norm_p,
            slots: LossSlots::build(
                name,
                parts.distance,
                parts.reducer,
                parts.embedding_regularizer,
                parts.embedding_reg_weight,
                &TERMS,
            )?,
            weight_reg: WeightRegularization::build(
                name,
                parts.weight_regularizer,
                parts.weight_reg_weight,
            )?,
        })
    }

    /// The shape of `W`: `[embedding_size, num_classes · sub_centers]`.
    pub fn weight_shape(&self) -> [usize; 2] {
        [self.embedding_size, self.num_classes * self.sub_centers]
    }

    /// PML's initialisation of `W`: `torch.nn.init.normal_` (standard normal entries).
    pub fn init_weights<B: Backend>(&self, device: &B::Device) -> Param<Tensor<B, 2>> {
        param(normal(self.weight_shape(), 1.0, device))
    }

    /// Cosine of each embedding to each class, `[n, num_classes]` (with sub-centers, the
    /// largest over a class's sub-centers).
    fn cosine<B: Backend>(&self, w: Tensor<B, 2>, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        let n = embeddings.dims()[0];
        let cos = self.slots.distance.forward(embeddings, Some(w.transpose()));
        if self.sub_centers == 1 {
            cos
        } else {
            cos.reshape([n, self.num_classes, self.sub_centers])
                .max_dim(2)
                .reshape([n, self.num_classes])
        }
    }

    fn scale_logits<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        embeddings: Tensor<B, 2>,
        w: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        match self.scaling {
            LogitScale::Constant => logits.mul_scalar(self.scale),
            LogitScale::EmbeddingNorm => {
                logits * lp_norm_rows(embeddings, 2.0).mul_scalar(self.scale)
            }
            LogitScale::Magnitudes => {
                let c = w.dims()[1];
                let w_norms = lp_norm_rows(w.transpose(), self.norm_p).reshape([1, c]);
                logits * w_norms * lp_norm_rows(embeddings, self.norm_p).mul_scalar(self.scale)
            }
        }
    }

    /// The margin-modified cosine of the target classes, `[n] -> [n]`.
    fn modify<B: Backend>(&self, cos: Tensor<B, 1>) -> Tensor<B, 1> {
        match self.margin {
            TargetMargin::Cosine(m) => cos.sub_scalar(m),
            TargetMargin::Additive(m) => {
                let angles = cos.clamp(-1.0, 1.0).acos();
                let past = angles.clone().greater_elem(PI - m);
                let fallback = angles.clone().cos().sub_scalar(m * m.sin());
                angles.add_scalar(m).cos().mask_where(past, fallback)
            }
            TargetMargin::Multiplicative(m) => {
                // cos(mθ) = Σ_j (−1)^j C(m, 2j) cos^(m−2j) θ sin^(2j) θ, powers by products.
                let sin_sq = cos.clone().powi_scalar(2).neg().add_scalar(1.0);
                let mut cos_pows = vec![cos.ones_like()];
                for i in 1..=m {
                    let next = cos_pows[i - 1].clone() * cos.clone();
                    cos_pows.push(next);
                }
                let mut sin_pow = cos.ones_like();
                let mut cos_m = cos.zeros_like();
                for j in 0..=m / 2 {
                    if j > 0 {
                        sin_pow = sin_pow * sin_sq.clone();
                    }
                    let coef = if j % 2 == 0 { 1.0 } else { -1.0 } * binomial(m, 2 * j);
                    cos_m =
                        cos_m + (cos_pows[m - 2 * j].clone() * sin_pow.clone()).mul_scalar(coef);
                }
                let angles = cos.clamp(-1.0, 1.0).acos().detach();
                let k = angles.div_scalar(PI / m as f64).floor();
                // (−1)^k = 1 − 2 (k mod 2), k ≥ 0.
                let parity = k.clone() - k.clone().div_scalar(2.0).floor().mul_scalar(2.0);
                let sign = parity.mul_scalar(-2.0).add_scalar(1.0);
                sign * cos_m - k.mul_scalar(2.0)
            }
        }
    }

    /// The prepared inputs of the cosine matrix when the loss is differentiated off the
    /// autodiff graph ([`detached_cross_entropy`](Self::detached_cross_entropy)): one center
    /// per class, a constant scale, and a distance whose matrix is the Gram matrix itself.
    fn detached_gram<B: Backend>(
        &self,
        embeddings: &Tensor<B, 2>,
        w: &Tensor<B, 2>,
    ) -> Option<GramInputs<B>> {
        if self.sub_centers != 1 || !matches!(self.scaling, LogitScale::Constant) {
            return None;
        }
        self.slots
            .distance
            .gram_inputs(embeddings.clone(), Some(w.clone().transpose()))
            .filter(|g| g.form() == GramForm::Inner { power: 1.0 })
    }

    /// Each row's cross entropy, `[n]`, computed on the constant cosine matrix `cos` (`[n, c]`),
    /// in blocks of rows ([`GramInputs::map_blocks`]): with `L = s·cos` except
    /// `L_iy = s·modify(cos_iy)` (`y = labels_i`) and `p = softmax(L)` per row,
    /// `ℓ_i = log Σ_j exp(L_ij) − L_iy`, whose derivatives are `∂ℓ_i/∂cos_ij = s·p_ij` for
    /// `j ≠ y` (attached by the block's link) and `∂ℓ_i/∂modify_i = s·(p_iy − 1)` with
    /// `p_iy = exp(L_iy − log Σ_j exp(L_ij))`, attached through `modify` of the target cosines,
    /// which alone are on the autodiff graph. No `[n, c]` operation is differentiated, and the
    /// target column is marked by a mask (no `gather` or `scatter` over `[n, c]`).
    fn detached_cross_entropy<B: Backend>(
        &self,
        gram: &GramInputs<B>,
        labels: Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        let s = self.scale;
        let modified = self.modify(gram.gram_entries(labels.clone()));
        let target = constant(modified.clone());
        let classes = Tensor::<B, 1, Int>::arange(0..self.num_classes as i64, &labels.device());
        let threads = block_threads::<B>(&labels.device());
        let rows = gram.map_blocks(BLOCK_ENTRIES, threads, |rows, matrix| {
            let [b, c] = matrix.mat().dims();
            let is_target = pairwise_equal(&labels.clone().narrow(0, rows.start, b), &classes);
            let target = target.clone().narrow(0, rows.start, b).reshape([b, 1]);
            let logits = matrix
                .mat()
                .clone()
                .mask_where(is_target.clone(), target.clone().expand([b, c]))
                .mul_scalar(s);
            let (lse, p) = masked_logsumexp_with_slopes(logits, None, false);
            let slopes = p.mul_scalar(s).mask_fill(is_target, 0.0);
            let target_logits = target.reshape([b]).mul_scalar(s);
            let lse = lse.reshape([b]);
            let target_slopes = (target_logits.clone() - lse.clone())
                .exp()
                .sub_scalar(1.0)
                .mul_scalar(s);
            let link = matrix.link_rows(slopes)
                + modified.clone().narrow(0, rows.start, b) * target_slopes;
            value_with_gradient(lse - target_logits, link)
        });
        Tensor::cat(rows, 0)
    }

    /// PML's `compute_loss` (with the embedding regularization): the term `loss`, one
    /// cross entropy per embedding times its miner weight, and `weight_reg_loss` on the rows
    /// of `Wᵀ`.
    ///
    /// # Panics
    /// As [`expect_batch`].
    pub fn forward_terms<B: Backend>(
        &self,
        w: &Param<Tensor<B, 2>>,
        input: &LossInput<B>,
    ) -> LossTerms<B> {
        input.validate();
        let labels = expect_batch(self.name, input, self.embedding_size, self.num_classes);
        let embeddings = input.embeddings.clone();
        let n = embeddings.dims()[0];
        let w = value_like(w, &embeddings);
        let weights = convert_to_weights(input.indices_tuple.as_ref(), &embeddings, false);
        let losses = match self.detached_gram(&embeddings, &w) {
            Some(gram) => self.detached_cross_entropy(&gram, labels),
            None => {
                let cosine = self.cosine(w.clone(), embeddings.clone());
                let mask = one_hot_like(&labels, &cosine);
                let target = cosine
                    .clone()
                    .gather(1, labels.clone().reshape([n, 1]))
                    .reshape([n]);
                let diff = (self.modify(target.clone()) - target).reshape([n, 1]);
                let logits = self.scale_logits(cosine + mask * diff, embeddings.clone(), w.clone());
                cross_entropy_rows(logits, labels)
            }
        } * weights;
        let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &embeddings.device());
        let mut terms = LossTerms::new().with(LossTerm::element("loss", losses, idx));
        self.weight_reg.add(&mut terms, w.transpose());
        self.slots.with_regularization(terms, input)
    }

    /// PML's `get_logits`: the scaled cosines without margin, `[n, num_classes]`.
    ///
    /// # Panics
    /// If the embeddings are not `embedding_size` wide.
    pub fn logits<B: Backend>(
        &self,
        w: &Param<Tensor<B, 2>>,
        embeddings: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        if let Err(e) = check_width(
            self.name,
            &embeddings,
            "embedding_size",
            self.embedding_size,
        ) {
            panic!("{e}");
        }
        let w = value_like(w, &embeddings);
        let cosine = self.cosine(w.clone(), embeddings.clone());
        self.scale_logits(cosine, embeddings, w)
    }

    /// Reduces the terms with the loss's reducer.
    pub fn reduce<B: Backend>(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.slots.reduce(&terms, input)
    }

    /// The checks of [`forward_terms`](Self::forward_terms), as a `Result`.
    pub fn check<B: Backend>(&self, input: &LossInput<B>) -> Result<(), PmlError> {
        crate::class_weights::check_batch(self.name, input, self.embedding_size, self.num_classes)
            .map(|_| ())
    }

    /// The cosine similarity used by the loss (for `get_outliers`).
    pub fn similarity<B: Backend>(
        &self,
        query: Tensor<B, 2>,
        reference: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        self.slots.distance.forward(query, Some(reference))
    }

    /// Number of sub-centers per class.
    pub fn sub_centers(&self) -> usize {
        self.sub_centers
    }

    /// The loss's PML class name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// `C(n, k)` as a float.
fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// The methods every loss of the family has: `with_W`, `get_logits` and [`MetricLoss`]
/// (delegating to its [`MarginSoftmax`] field `base` and its weight `W`).
///
/// [`MetricLoss`]: pml_core::MetricLoss
macro_rules! margin_softmax_impls {
    ($loss:ident) => {
        impl<B: burn::tensor::backend::Backend> $loss<B> {
            /// Replaces `W` with the given values (same shape; the parameter id is kept).
            ///
            /// # Panics
            /// If the shape differs from `W`'s.
            pub fn with_W(mut self, W: burn::tensor::Tensor<B, 2>) -> Self {
                self.W = $crate::class_weights::replace(&self.W, W, self.base.name(), "W");
                self
            }

            /// PML's `get_logits`: the class logits without margin, `[n, num_classes]`, whose
            /// argmax classifies the embeddings.
            ///
            /// # Panics
            /// If the embeddings are not `embedding_size` wide.
            pub fn get_logits(
                &self,
                embeddings: burn::tensor::Tensor<B, 2>,
            ) -> burn::tensor::Tensor<B, 2> {
                self.base.logits(&self.W, embeddings)
            }
        }

        impl<B: burn::tensor::backend::Backend> pml_core::MetricLoss<B> for $loss<B> {
            fn forward_terms(&self, input: &pml_core::LossInput<B>) -> pml_core::LossTerms<B> {
                self.base.forward_terms(&self.W, input)
            }

            fn reduce(
                &self,
                terms: pml_core::LossTerms<B>,
                input: &pml_core::LossInput<B>,
            ) -> burn::tensor::Tensor<B, 1> {
                self.base.reduce(terms, input)
            }

            fn try_forward(
                &self,
                input: pml_core::LossInput<B>,
            ) -> Result<burn::tensor::Tensor<B, 1>, pml_core::PmlError> {
                input.check()?;
                self.base.check(&input)?;
                Ok(self.forward(input))
            }
        }
    };
}
pub(crate) use margin_softmax_impls;
