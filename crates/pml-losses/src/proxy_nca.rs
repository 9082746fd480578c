use burn::{
    config::Config,
    module::{Module, Param},
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{Distance, LossInput, LossTerms, MetricLoss, PmlError, Reference};
use pml_distances::{AnyDistance, DistanceConfig, LpDistanceConfig};
use pml_reducers::ReducerConfig;

use crate::{
    NCALoss, NCALossConfig,
    base::WeightRegularization,
    class_weights::{
        check_batch, check_width, expect_batch, normal, param, positive, replace, value_like,
    },
    regularizers::RegularizerConfig,
};

const NAME: &str = "ProxyNCALoss";

/// Configuration of [`ProxyNCALoss`], with PML's argument names and defaults (`num_classes`
/// and `embedding_size` are required, as in PML).
#[derive(Config, Debug)]
pub struct ProxyNCALossConfig {
    /// Number of classes (one proxy each).
    pub num_classes: usize,
    /// Width of the embeddings and proxies.
    pub embedding_size: usize,
    /// Multiplies the (negated) distances before the softmax.
    #[config(default = 1.0)]
    pub softmax_scale: f64,
    /// The distance (PML's default, NCALoss's: `LpDistance(power=2)`, normalized embeddings).
    #[config(default = "DistanceConfig::Lp(LpDistanceConfig::new().with_power(2.0))")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `MeanReducer`).
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
    /// An optional penalty on the proxies, added as the term `weight_reg_loss`.
    pub weight_regularizer: Option<RegularizerConfig>,
    /// Weight of the proxy penalty.
    #[config(default = 1.0)]
    pub weight_reg_weight: f64,
}

impl ProxyNCALossConfig {
    /// Builds the loss on `device`, with the proxies drawn from `N(0, 1)` as in PML; refuses
    /// zero sizes, a non-finite `softmax_scale` and invalid slots.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<ProxyNCALoss<B>, PmlError> {
        positive(NAME, "num_classes", self.num_classes)?;
        positive(NAME, "embedding_size", self.embedding_size)?;
        let nca = NCALossConfig {
            softmax_scale: self.softmax_scale,
            distance: self.distance.clone(),
            reducer: self.reducer.clone(),
            embedding_regularizer: self.embedding_regularizer.clone(),
            embedding_reg_weight: self.embedding_reg_weight,
        }
        .try_init()
        .map_err(|e| match e {
            PmlError::Unsupported(m) => PmlError::Unsupported(m.replace("NCALoss", NAME)),
            other => other,
        })?;
        Ok(ProxyNCALoss {
            proxies: param(normal([self.num_classes, self.embedding_size], 1.0, device)),
            num_classes: self.num_classes,
            embedding_size: self.embedding_size,
            distance: self.distance.init(),
            nca,
            weight_reg: WeightRegularization::build(
                NAME,
                self.weight_regularizer.as_ref(),
                self.weight_reg_weight,
            )?,
        })
    }

    /// Builds the loss on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ProxyNCALoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Proxy NCA (Movshovitz-Attias et al., "No Fuss Distance Metric Learning using Proxies", ICCV
/// 2017; PML's `ProxyNCALoss`): [`NCALoss`](crate::NCALoss) with the trainable class proxies as
/// the reference set. With `p_ic = softmax_c(−scale · d(x_i, p_c))` (similarities are not
/// negated), each embedding loses
///
/// `L_i = −log p_{i y_i}`, times its miner weight
///
/// (PML's `convert_to_weights` over the tuple's anchors, 1 without an indices tuple). Term
/// `loss` (element reduction, mean by default) and, with a weight regularizer,
/// `weight_reg_loss` on the proxies. [`get_logits`](Self::get_logits) gives `d(x_i, p_c)`
/// (PML's: the raw distance matrix, so with the default distance the *smallest* entry is the
/// predicted class; with a similarity, the largest).
///
/// A batch of a single embedding gives the zero loss, as NCALoss does (PML's ProxyNCALoss
/// computes it).
///
/// `proxies` is a trainable `Param` (`[num_classes, embedding_size]`, PML's attribute name), so
/// the loss nests in a model and is optimized and saved with it.
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
pub struct ProxyNCALoss<B: Backend> {
    /// The class proxies, PML's attribute `proxies`, `[num_classes, embedding_size]`.
    pub proxies: Param<Tensor<B, 2>>,
    num_classes: usize,
    embedding_size: usize,
    distance: AnyDistance,
    nca: NCALoss,
    weight_reg: WeightRegularization,
}

impl<B: Backend> ProxyNCALoss<B> {
    /// Replaces the proxies with the given values (same shape; the parameter id is kept).
    ///
    /// # Panics
    /// If the shape differs from the proxies'.
    pub fn with_proxies(mut self, proxies: Tensor<B, 2>) -> Self {
        self.proxies = replace(&self.proxies, proxies, NAME, "proxies");
        self
    }

    /// PML's `get_logits`: the distance (or similarity) of each embedding to each proxy,
    /// `[n, num_classes]`.
    ///
    /// # Panics
    /// If the embeddings are not `embedding_size` wide.
    pub fn get_logits(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        if let Err(e) = check_width(NAME, &embeddings, "embedding_size", self.embedding_size) {
            panic!("{e}");
        }
        let proxies = value_like(&self.proxies, &embeddings);
        self.distance.forward(embeddings, Some(proxies))
    }

    /// The batch with the proxies (labelled `0..num_classes`) as its reference set.
    fn with_proxy_reference(
        &self,
        input: &LossInput<B>,
        labels: Tensor<B, 1, Int>,
    ) -> LossInput<B> {
        let proxies = value_like(&self.proxies, &input.embeddings);
        let proxy_labels =
            Tensor::<B, 1, Int>::arange(0..self.num_classes as i64, &input.embeddings.device());
        LossInput {
            embeddings: input.embeddings.clone(),
            labels: Some(labels),
            indices_tuple: input.indices_tuple.clone(),
            reference: Some(Reference {
                embeddings: proxies,
                labels: Some(proxy_labels),
            }),
        }
    }
}

impl<B: Backend> MetricLoss<B> for ProxyNCALoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = expect_batch(NAME, input, self.embedding_size, self.num_classes);
        let with_proxies = self.with_proxy_reference(input, labels);
        let mut terms = self.nca.forward_terms(&with_proxies);
        let proxies = with_proxies.reference.map(|r| r.embeddings);
        if let Some(proxies) = proxies {
            self.weight_reg.add(&mut terms, proxies);
        }
        terms
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        MetricLoss::<B>::reduce(&self.nca, terms, input)
    }

    fn try_forward(&self, input: LossInput<B>) -> Result<Tensor<B, 1>, PmlError> {
        input.check()?;
        check_batch(NAME, &input, self.embedding_size, self.num_classes)?;
        Ok(self.forward(input))
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
        // Raw squared distances (not normalized): x = (0, 0), proxies (1, 0), (0, 2):
        // d² = 1, 4; label 0: p = e^{−1} / (e^{−1} + e^{−4}), loss = ln(1 + e^{−3}), twice
        // (two identical rows), mean the same.
        let loss = ProxyNCALossConfig::new(2, 2)
            .with_distance(DistanceConfig::Lp(
                LpDistanceConfig::new()
                    .with_power(2.0)
                    .with_normalize_embeddings(false),
            ))
            .init::<B>(&device)
            .with_proxies(Tensor::from_floats([[1.0, 0.0], [0.0, 2.0]], &device));
        let x = Tensor::<B, 2>::from_floats([[0.0, 0.0], [0.0, 0.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0], &device);
        let v = loss
            .forward(LossInput::new(x.clone(), labels))
            .into_scalar();
        assert!((v - (1.0 + (-3f32).exp()).ln()).abs() < 1e-5, "{v}");
        let logits = pml_core::tensor::float_vec(loss.get_logits(x));
        assert_eq!(logits, vec![1.0, 4.0, 1.0, 4.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = ProxyNCALossConfig::new(3, 4).init::<crate::gradcheck::B64>(&Default::default());
        crate::gradcheck::check_gradients(&loss, &[0, 1, 2, 0, 1, 2], 4, 23);
    }
}
