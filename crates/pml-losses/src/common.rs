//! Small pieces shared by several losses: PML's input checks (`c_f.labels_required`,
//! `ref_not_supported`, ...), its distance-type assertions, `convert_to_weights`, and row-wise
//! cross entropy.

use burn::tensor::{IndexingUpdateOp, Int, Tensor, backend::Backend};
use pml_core::{IndicesTuple, LossInput, PmlError, math::masked_logsumexp};
use pml_distances::DistanceConfig;

/// The batch's labels (PML's `c_f.labels_required`).
///
/// # Panics
/// If `input` has no labels.
pub(crate) fn require_labels<B: Backend>(input: &LossInput<B>, loss: &str) -> Tensor<B, 1, Int> {
    input.labels.clone().unwrap_or_else(|| {
        panic!(
            "{loss}: labels are required for this loss function (embeddings shape {:?})",
            input.embeddings.dims()
        )
    })
}

/// PML's `c_f.ref_not_supported`.
///
/// # Panics
/// If `input` has a reference set.
pub(crate) fn refuse_reference<B: Backend>(input: &LossInput<B>, loss: &str) {
    if let Some(r) = &input.reference {
        panic!(
            "{loss}: ref_emb is not supported for this loss function (ref_emb shape {:?})",
            r.embeddings.dims()
        );
    }
}

/// PML's `c_f.indices_tuple_not_supported`.
///
/// # Panics
/// If `input` has an indices tuple.
pub(crate) fn refuse_indices_tuple<B: Backend>(input: &LossInput<B>, loss: &str) {
    if input.indices_tuple.is_some() {
        panic!("{loss}: indices_tuple is not supported for this loss function");
    }
}

/// PML's `c_f.assert_distance_type(self, CosineSimilarity)`.
pub(crate) fn require_cosine(distance: &DistanceConfig, loss: &str) -> Result<(), PmlError> {
    match distance {
        DistanceConfig::Cosine(_) => Ok(()),
        other => Err(PmlError::Unsupported(format!(
            "{loss} requires the distance metric to be CosineSimilarity, got {}",
            other.pml_name()
        ))),
    }
}

/// PML's `c_f.assert_distance_type(self, LpDistance, normalize_embeddings=True, p=2[, power])`.
pub(crate) fn require_normalized_l2(
    distance: &DistanceConfig,
    power: Option<f64>,
    loss: &str,
) -> Result<(), PmlError> {
    let DistanceConfig::Lp(c) = distance else {
        return Err(PmlError::Unsupported(format!(
            "{loss} requires the distance metric to be LpDistance, got {}",
            distance.pml_name()
        )));
    };
    if !c.normalize_embeddings {
        return Err(PmlError::Unsupported(format!(
            "{loss} requires distance.normalize_embeddings to be true"
        )));
    }
    if c.p != 2.0 {
        return Err(PmlError::Unsupported(format!(
            "{loss} requires distance.p to be 2, got {}",
            c.p
        )));
    }
    if let Some(power) = power
        && c.power != power
    {
        return Err(PmlError::Unsupported(format!(
            "{loss} requires distance.power to be {power}, got {}",
            c.power
        )));
    }
    Ok(())
}

/// Refuses a non-finite hyperparameter.
pub(crate) fn finite(loss: &str, name: &str, value: f64) -> Result<(), PmlError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(PmlError::invalid_argument(
            name,
            value,
            format!("{loss}: must be finite"),
        ))
    }
}

/// PML's `lmu.convert_to_weights`: a weight per batch element, `count / max count` of its
/// occurrences in the indices tuple (only the anchors with a reference set), or all ones
/// without a tuple (or with an empty one). Computed on the device.
///
/// # Shapes
/// output `[n]`, with the dtype and device of `like` (`[n, d]`)
pub(crate) fn convert_to_weights<B: Backend>(
    tuple: Option<&IndicesTuple<B>>,
    like: &Tensor<B, 2>,
    using_ref: bool,
) -> Tensor<B, 1> {
    let n = like.dims()[0];
    let ones = like.clone().slice([0..n, 0..1]).reshape([n]).ones_like();
    let Some(tuple) = tuple else {
        return ones;
    };
    let parts: Vec<Tensor<B, 1, Int>> = match (tuple, using_ref) {
        (IndicesTuple::Pairs { a1, a2, .. }, true) => vec![a1.clone(), a2.clone()],
        (IndicesTuple::Triplets { a, .. }, true) => vec![a.clone()],
        (IndicesTuple::Pairs { a1, p, a2, n }, false) => {
            vec![a1.clone(), p.clone(), a2.clone(), n.clone()]
        }
        (IndicesTuple::Triplets { a, p, n }, false) => vec![a.clone(), p.clone(), n.clone()],
    };
    let all_empty = match tuple {
        IndicesTuple::Pairs { a1, p, a2, n } => [a1, p, a2, n].iter().all(|t| t.dims()[0] == 0),
        IndicesTuple::Triplets { a, p, n } => [a, p, n].iter().all(|t| t.dims()[0] == 0),
    };
    if all_empty {
        return ones;
    }
    let indices = Tensor::cat(parts, 0);
    let k = indices.dims()[0];
    if k == 0 {
        return ones.mul_scalar(0.0);
    }
    let values = Tensor::<B, 1>::ones([k], (&like.device(), like.dtype()));
    let counts = ones
        .mul_scalar(0.0)
        .scatter(0, indices, values, IndexingUpdateOp::Add);
    let max = counts.clone().max();
    counts / max
}

/// Row-wise cross entropy `logsumexp(logits_i) − logits_i[target_i]` (PyTorch's
/// `cross_entropy(reduction="none")`).
///
/// # Shapes
/// - `logits`: `[n, c]`, `targets`: `[n]` with values in `0..c`
/// - output: `[n]`
pub(crate) fn cross_entropy_rows<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    let n = logits.dims()[0];
    let lse = masked_logsumexp(logits.clone(), None, false);
    let picked = logits.gather(1, targets.reshape([n, 1]));
    (lse - picked).reshape([n])
}
