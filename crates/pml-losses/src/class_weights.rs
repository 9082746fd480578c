//! Pieces shared by the losses that own trainable class weights (ArcFace's `W`, ProxyAnchor's
//! `proxies`, SoftTriple's `fc`, P2SGrad's `weight`, ...): PML's initialisations, replacing a
//! weight with given values, the checks of a batch against `num_classes` and
//! `embedding_size`, and the one-hot target mask.

use burn::{
    module::Param,
    tensor::{Distribution, ElementConversion, Int, Tensor, backend::Backend},
};
use pml_core::{LossInput, PmlError, labels::pairwise_equal, tensor::mask_to_float};

/// Refuses a zero size (`num_classes`, `embedding_size`, ...).
pub(crate) fn positive(loss: &str, name: &str, value: usize) -> Result<(), PmlError> {
    if value == 0 {
        return Err(PmlError::invalid_argument(
            name,
            value,
            format!("{loss}: must be positive"),
        ));
    }
    Ok(())
}

/// `torch.nn.init.normal_`: entries drawn from `N(0, std²)`.
pub(crate) fn normal<B: Backend>(shape: [usize; 2], std: f64, device: &B::Device) -> Tensor<B, 2> {
    Tensor::random(shape, Distribution::Normal(0.0, std), device)
}

/// Entries drawn uniformly from `[−bound, bound)`.
pub(crate) fn uniform<B: Backend>(
    shape: [usize; 2],
    bound: f64,
    device: &B::Device,
) -> Tensor<B, 2> {
    Tensor::random(shape, Distribution::Uniform(-bound, bound), device)
}

/// A new trainable weight.
pub(crate) fn param<B: Backend>(value: Tensor<B, 2>) -> Param<Tensor<B, 2>> {
    Param::from_tensor(value)
}

/// `param` with its value replaced by `value` (same parameter id, so an optimizer's state
/// still applies), for the `with_<name>` setters.
///
/// # Panics
/// If the shapes differ, naming the loss, the weight and both shapes.
pub(crate) fn replace<B: Backend>(
    param: &Param<Tensor<B, 2>>,
    value: Tensor<B, 2>,
    loss: &str,
    name: &str,
) -> Param<Tensor<B, 2>> {
    let expected = param.dims();
    assert_eq!(
        value.dims(),
        expected,
        "{loss}: `{name}` has shape {:?}, expected {expected:?}",
        value.dims()
    );
    Param::initialized(param.id, value.detach().require_grad())
}

/// The weight's value in the dtype of `like` (Burn keeps one default dtype per device, so a
/// float64 batch meets a weight created in the default dtype).
pub(crate) fn value_like<B: Backend>(
    param: &Param<Tensor<B, 2>>,
    like: &Tensor<B, 2>,
) -> Tensor<B, 2> {
    let w = param.val();
    if w.dtype() == like.dtype() {
        w
    } else {
        w.cast(like.dtype())
    }
}

/// Refuses embeddings whose width is not `embedding_size`, naming both numbers.
pub(crate) fn check_width<B: Backend>(
    loss: &str,
    embeddings: &Tensor<B, 2>,
    size_name: &str,
    embedding_size: usize,
) -> Result<(), PmlError> {
    let [n, d] = embeddings.dims();
    if d != embedding_size {
        return Err(PmlError::invalid_input(
            "embeddings",
            format!(
                "{loss}: embedding width {d} differs from {size_name} = {embedding_size} \
                 (embeddings shape [{n}, {d}])"
            ),
        ));
    }
    Ok(())
}

/// Refuses labels outside `0..num_classes`, naming the offending label and `num_classes`.
/// Reads one scalar back from the device (and two more on failure, for the message).
pub(crate) fn check_labels<B: Backend>(
    loss: &str,
    labels: &Tensor<B, 1, Int>,
    num_classes: usize,
) -> Result<(), PmlError> {
    if labels.dims()[0] == 0 {
        return Ok(());
    }
    let out = labels
        .clone()
        .greater_equal_elem(num_classes as i64)
        .bool_or(labels.clone().lower_elem(0));
    let count: i64 = out.int().sum().into_scalar().elem();
    if count == 0 {
        return Ok(());
    }
    let max: i64 = labels.clone().max().into_scalar().elem();
    let min: i64 = labels.clone().min().into_scalar().elem();
    let bad = if max >= num_classes as i64 { max } else { min };
    Err(PmlError::invalid_input(
        "labels",
        format!(
            "{loss}: label {bad} is out of range for num_classes = {num_classes} \
             ({count} label(s) outside 0..{num_classes})"
        ),
    ))
}

/// The checks every loss with class weights makes before computing (PML's
/// `c_f.labels_required`, `c_f.ref_not_supported`, and the ranges the weights' shapes imply):
/// no reference set, labels present and in `0..num_classes`, embeddings `embedding_size` wide.
/// Returns the labels.
pub(crate) fn check_batch<B: Backend>(
    loss: &str,
    input: &LossInput<B>,
    embedding_size: usize,
    num_classes: usize,
) -> Result<Tensor<B, 1, Int>, PmlError> {
    input.check_shapes()?;
    if let Some(r) = &input.reference {
        return Err(PmlError::Unsupported(format!(
            "{loss}: ref_emb is not supported for this loss function (ref_emb shape {:?})",
            r.embeddings.dims()
        )));
    }
    let labels = input.labels.clone().ok_or_else(|| {
        PmlError::invalid_input(
            "labels",
            format!(
                "{loss}: labels are required for this loss function (embeddings shape {:?})",
                input.embeddings.dims()
            ),
        )
    })?;
    check_width(loss, &input.embeddings, "embedding_size", embedding_size)?;
    check_labels(loss, &labels, num_classes)?;
    Ok(labels)
}

/// [`check_batch`], panicking with its message (for `forward_terms`).
pub(crate) fn expect_batch<B: Backend>(
    loss: &str,
    input: &LossInput<B>,
    embedding_size: usize,
    num_classes: usize,
) -> Tensor<B, 1, Int> {
    check_batch(loss, input, embedding_size, num_classes).unwrap_or_else(|e| panic!("{e}"))
}

/// `1` at `[i, labels[i]]` and `0` elsewhere, with the shape, dtype and device of `like`
/// (`[n, num_classes]`).
pub(crate) fn one_hot_like<B: Backend>(
    labels: &Tensor<B, 1, Int>,
    like: &Tensor<B, 2>,
) -> Tensor<B, 2> {
    let c = like.dims()[1];
    let classes = Tensor::<B, 1, Int>::arange(0..c as i64, &labels.device());
    mask_to_float(pairwise_equal(labels, &classes), like)
}

/// The number of true entries of `mask`, as a `[1]` float tensor with the dtype of `like`
/// (computed on the device).
pub(crate) fn count_true<B: Backend>(
    mask: Tensor<B, 1, burn::tensor::Bool>,
    like: &Tensor<B, 1>,
) -> Tensor<B, 1> {
    let n = mask.dims()[0];
    let ones = Tensor::<B, 1>::ones([n], (&like.device(), like.dtype()));
    ones.mask_fill(mask.bool_not(), 0.0).sum()
}

#[cfg(test)]
mod tests {
    use burn::{
        backend::{Autodiff, NdArray},
        module::Module,
        nn::{Linear, LinearConfig},
        optim::{AdamConfig, GradientsParams, Optimizer},
        tensor::{Int, Tensor, TensorData, backend::Backend},
    };
    use pml_core::{
        LossInput, MetricLoss,
        rng::SeededRng,
        tensor::{float_vec, int_tensor, int_vec},
    };

    use crate::{
        ArcFaceLoss, ArcFaceLossConfig, LossConfig, ProxyAnchorLoss, ProxyAnchorLossConfig,
    };

    type B = Autodiff<NdArray>;

    /// Every loss with class weights, as a spec with 3 classes and width 4.
    const SPECS: [&str; 10] = [
        r#"{"name": "ArcFaceLoss", "params": {"num_classes": 3, "embedding_size": 4}}"#,
        r#"{"name": "CosFaceLoss", "params": {"num_classes": 3, "embedding_size": 4}}"#,
        r#"{"name": "SphereFaceLoss", "params": {"num_classes": 3, "embedding_size": 4}}"#,
        r#"{"name": "LargeMarginSoftmaxLoss", "params": {"num_classes": 3, "embedding_size": 4}}"#,
        r#"{"name": "NormalizedSoftmaxLoss", "params": {"num_classes": 3, "embedding_size": 4}}"#,
        r#"{"name": "SubCenterArcFaceLoss", "params": {"num_classes": 3, "embedding_size": 4}}"#,
        r#"{"name": "ProxyAnchorLoss", "params": {"num_classes": 3, "embedding_size": 4}}"#,
        r#"{"name": "ProxyNCALoss", "params": {"num_classes": 3, "embedding_size": 4}}"#,
        r#"{"name": "SoftTripleLoss", "params": {"num_classes": 3, "embedding_size": 4}}"#,
        r#"{"name": "P2SGradLoss", "params": {"descriptors_dim": 4, "num_classes": 3}}"#,
    ];

    fn refusal(spec: &str, width: usize, labels: &[i64]) -> (String, String) {
        let device = Default::default();
        let config: LossConfig = serde_json::from_str(spec).unwrap();
        let loss = config.init::<B>(&device);
        let x = Tensor::<B, 2>::ones([labels.len(), width], &device);
        let input = LossInput::new(x, int_tensor(labels, &device));
        let err = loss.try_forward(input.clone()).unwrap_err().to_string();
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loss.forward(input)))
            .expect_err("forward must panic");
        let panic = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        (err, panic)
    }

    #[test]
    fn a_label_beyond_num_classes_is_refused_naming_both_numbers() {
        for spec in SPECS {
            let (err, panic) = refusal(spec, 4, &[0, 1, 7, 2]);
            for text in [&err, &panic] {
                assert!(
                    text.contains("label 7") && text.contains("num_classes = 3"),
                    "{spec}: {text}"
                );
            }
        }
    }

    #[test]
    fn a_wrong_embedding_width_is_refused_naming_both_numbers() {
        for spec in SPECS {
            let (err, panic) = refusal(spec, 5, &[0, 1, 2, 2]);
            for text in [&err, &panic] {
                assert!(
                    text.contains("width 5") && text.contains("= 4"),
                    "{spec}: {text}"
                );
            }
        }
    }

    #[test]
    fn logits_exist_for_the_classifier_losses() {
        let device = Default::default();
        for spec in SPECS {
            let loss = serde_json::from_str::<LossConfig>(spec)
                .unwrap()
                .init::<B>(&device);
            let logits = loss.logits(Tensor::ones([2, 4], &device));
            let has = !spec.contains("P2SGrad");
            assert_eq!(logits.map(|l| l.dims()), has.then_some([2, 3]), "{spec}");
        }
    }

    /// Four well-separated classes in 8 dimensions, 8 noisy samples each.
    fn separable() -> (Tensor<B, 2>, Tensor<B, 1, Int>, Vec<i64>) {
        let rng = SeededRng::new(5);
        let (mut x, mut labels) = (Vec::new(), Vec::new());
        for i in 0..32 {
            let class = i % 4;
            for j in 0..8 {
                let center = if j == 2 * class || j == 2 * class + 1 {
                    2.0
                } else {
                    0.0
                };
                x.push(center + (rng.uniform() - 0.5) * 0.6);
            }
            labels.push(class as i64);
        }
        let device = Default::default();
        let x = Tensor::from_data(TensorData::new(x, [32, 8]), &device);
        (x, int_tensor(&labels, &device), labels)
    }

    #[derive(Module, Debug)]
    struct ArcFaceNet<B: Backend> {
        fc: Linear<B>,
        loss: ArcFaceLoss<B>,
    }

    #[derive(Module, Debug)]
    struct ProxyAnchorNet<B: Backend> {
        fc: Linear<B>,
        loss: ProxyAnchorLoss<B>,
    }

    fn argmax_rows(logits: Tensor<B, 2>) -> Vec<i64> {
        int_vec(logits.argmax(1).reshape([-1]))
    }

    #[test]
    fn arcface_trains_with_adam_and_classifies() {
        let device = Default::default();
        B::seed(&device, 3);
        let (x, labels, expected) = separable();
        let mut net = ArcFaceNet {
            fc: LinearConfig::new(8, 4).init(&device),
            loss: ArcFaceLossConfig::new(4, 4).with_scale(16.0).init(&device),
        };
        let w0 = float_vec(net.loss.W.val());
        let mut optimizer = AdamConfig::new().init();
        let mut losses = Vec::new();
        for _ in 0..60 {
            let value = net
                .loss
                .forward(LossInput::new(net.fc.forward(x.clone()), labels.clone()));
            losses.push(value.clone().into_scalar());
            let grads = GradientsParams::from_grads(value.backward(), &net);
            net = optimizer.step(0.05, net, grads);
        }
        assert!(losses[59] < 0.5 * losses[0], "{losses:?}");
        assert!(float_vec(net.loss.W.val()) != w0, "W did not change");
        let predicted = argmax_rows(net.loss.get_logits(net.fc.forward(x)));
        assert_eq!(predicted, expected);
    }

    #[test]
    fn proxy_anchor_trains_with_adam_and_classifies() {
        let device = Default::default();
        B::seed(&device, 4);
        let (x, labels, expected) = separable();
        let mut net = ProxyAnchorNet {
            fc: LinearConfig::new(8, 4).init(&device),
            loss: ProxyAnchorLossConfig::new(4, 4).init(&device),
        };
        let p0 = float_vec(net.loss.proxies.val());
        let mut optimizer = AdamConfig::new().init();
        let mut losses = Vec::new();
        for _ in 0..60 {
            let value = net
                .loss
                .forward(LossInput::new(net.fc.forward(x.clone()), labels.clone()));
            losses.push(value.clone().into_scalar());
            let grads = GradientsParams::from_grads(value.backward(), &net);
            net = optimizer.step(0.05, net, grads);
        }
        assert!(losses[59] < 0.5 * losses[0], "{losses:?}");
        assert!(
            float_vec(net.loss.proxies.val()) != p0,
            "the proxies did not change"
        );
        let predicted = argmax_rows(net.loss.get_logits(net.fc.forward(x)));
        assert_eq!(predicted, expected);
    }
}
