use burn::tensor::{ElementConversion, Int, Tensor, backend::Backend};

use crate::{IndicesTuple, PmlError};

/// A separate reference set (PML's `ref_emb`, `ref_labels`): positives and negatives are drawn
/// from it instead of from the batch, and no self-pairs are removed.
#[derive(Clone, Debug)]
pub struct Reference<B: Backend> {
    /// Reference embeddings, shape `[m, d]`.
    pub embeddings: Tensor<B, 2>,
    /// Reference labels, shape `[m]`; required unless an indices tuple is given.
    pub labels: Option<Tensor<B, 1, Int>>,
}

/// The inputs of a loss call, PML's `forward(embeddings, labels, indices_tuple, ref_emb,
/// ref_labels)`, built with a small builder:
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::LossInput;
/// let device = Default::default();
/// let embeddings = Tensor::<NdArray, 2>::zeros([4, 8], &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1], &device);
/// let input = LossInput::new(embeddings, labels);
/// assert!(input.reference.is_none());
/// ```
#[derive(Clone, Debug)]
pub struct LossInput<B: Backend> {
    /// The batch's embeddings, shape `[n, d]`.
    pub embeddings: Tensor<B, 2>,
    /// The batch's labels, shape `[n]`.
    pub labels: Option<Tensor<B, 1, Int>>,
    /// Mined pairs or triplets; `None` uses every pair/triplet the labels allow.
    pub indices_tuple: Option<IndicesTuple<B>>,
    /// A separate reference set; `None` means the batch is its own reference.
    pub reference: Option<Reference<B>>,
}

impl<B: Backend> LossInput<B> {
    /// Embeddings with labels.
    pub fn new(embeddings: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Self {
        Self {
            embeddings,
            labels: Some(labels),
            indices_tuple: None,
            reference: None,
        }
    }

    /// Embeddings without labels (an indices tuple, or a self-supervised loss, must supply the
    /// structure).
    pub fn unlabeled(embeddings: Tensor<B, 2>) -> Self {
        Self {
            embeddings,
            labels: None,
            indices_tuple: None,
            reference: None,
        }
    }

    /// Uses these mined pairs or triplets instead of all of them.
    pub fn with_indices(mut self, indices_tuple: IndicesTuple<B>) -> Self {
        self.indices_tuple = Some(indices_tuple);
        self
    }

    /// Uses a separate labelled reference set.
    pub fn with_reference(mut self, ref_emb: Tensor<B, 2>, ref_labels: Tensor<B, 1, Int>) -> Self {
        self.reference = Some(Reference {
            embeddings: ref_emb,
            labels: Some(ref_labels),
        });
        self
    }

    /// Uses a separate reference set without labels (an indices tuple must then be given).
    pub fn with_unlabeled_reference(mut self, ref_emb: Tensor<B, 2>) -> Self {
        self.reference = Some(Reference {
            embeddings: ref_emb,
            labels: None,
        });
        self
    }

    /// The reference embeddings: `ref_emb` if given, else the batch.
    pub fn ref_embeddings(&self) -> Tensor<B, 2> {
        match &self.reference {
            Some(r) => r.embeddings.clone(),
            None => self.embeddings.clone(),
        }
    }

    /// Number of rows of the reference set.
    pub fn ref_len(&self) -> usize {
        match &self.reference {
            Some(r) => r.embeddings.dims()[0],
            None => self.embeddings.dims()[0],
        }
    }

    /// The labels needed to build pairs or triplets from labels: the batch's labels and, when a
    /// reference set is given, its labels (`None` = the batch is its own reference, so self-pairs
    /// are removed).
    ///
    /// # Panics
    /// If `labels` is missing, or `ref_emb` was given without `ref_labels`.
    pub fn tuple_labels(&self) -> (Tensor<B, 1, Int>, Option<Tensor<B, 1, Int>>) {
        let labels = self.labels.clone().unwrap_or_else(|| {
            panic!(
                "labels and indices_tuple cannot both be None (embeddings shape {:?})",
                self.embeddings.dims()
            )
        });
        let ref_labels = self.reference.as_ref().map(|r| {
            r.labels.clone().unwrap_or_else(|| {
                panic!(
                    "ref_labels is required with ref_emb (shape {:?}) when no indices_tuple is given",
                    r.embeddings.dims()
                )
            })
        });
        (labels, ref_labels)
    }

    /// Checks the shapes: a batch and a reference of at least one row, labels as long as the
    /// batch, reference labels as long as the reference, reference width equal to the batch's.
    ///
    /// # Panics
    /// With a message naming the argument and the shapes, as Burn's tensor ops do.
    pub fn validate(&self) {
        if let Err(e) = self.check_shapes() {
            panic!("{e}");
        }
    }

    /// Like [`validate`](Self::validate), as a `Result`.
    pub fn check_shapes(&self) -> Result<(), PmlError> {
        let [n, d] = self.embeddings.dims();
        if n == 0 {
            return Err(PmlError::invalid_input(
                "embeddings",
                format!(
                    "an empty batch (embeddings shape [0, {d}]): a loss needs at least one row"
                ),
            ));
        }
        if let Some(labels) = &self.labels
            && labels.dims()[0] != n
        {
            return Err(PmlError::invalid_input(
                "labels",
                format!(
                    "length {} differs from the number of embeddings {n} (embeddings shape [{n}, {d}])",
                    labels.dims()[0]
                ),
            ));
        }
        if let Some(r) = &self.reference {
            let [m, rd] = r.embeddings.dims();
            if m == 0 {
                return Err(PmlError::invalid_input(
                    "ref_emb",
                    format!("an empty reference set (ref_emb shape [0, {rd}])"),
                ));
            }
            if rd != d {
                return Err(PmlError::invalid_input(
                    "ref_emb",
                    format!(
                        "width {rd} differs from the embeddings' width {d} (ref_emb shape [{m}, {rd}])"
                    ),
                ));
            }
            if let Some(rl) = &r.labels
                && rl.dims()[0] != m
            {
                return Err(PmlError::invalid_input(
                    "ref_labels",
                    format!(
                        "length {} differs from the number of reference embeddings {m}",
                        rl.dims()[0]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the shapes and that every embedding value is finite. This reads one boolean back
    /// from the device per tensor: use it (through [`MetricLoss::try_forward`]) where a bad batch
    /// must be skipped rather than produce a NaN loss.
    ///
    /// [`MetricLoss::try_forward`]: crate::MetricLoss::try_forward
    pub fn check(&self) -> Result<(), PmlError> {
        self.check_shapes()?;
        check_finite("embeddings", &self.embeddings)?;
        if let Some(r) = &self.reference {
            check_finite("ref_emb", &r.embeddings)?;
        }
        Ok(())
    }
}

/// Returns an error naming `argument` if `tensor` holds a NaN or an infinity.
pub fn check_finite<B: Backend>(argument: &str, tensor: &Tensor<B, 2>) -> Result<(), PmlError> {
    let bad = tensor.clone().is_finite().bool_not();
    let count: i64 = bad.int().sum().into_scalar().elem();
    if count > 0 {
        return Err(PmlError::invalid_input(
            argument,
            format!(
                "{count} non-finite value(s) (NaN or infinity) in a tensor of shape {:?}",
                tensor.dims()
            ),
        ));
    }
    Ok(())
}
