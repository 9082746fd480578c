//! [`DistributedLossWrapper`]: PML's `DistributedLossWrapper`.

use std::any::TypeId;
use std::marker::PhantomData;

use burn::module::Module;
use burn::tensor::{Bool, Tensor, backend::Backend};
use pml_core::{LossInput, LossTerms, MetricLoss, Miner, PmlError, Reference};
use pml_losses::CrossBatchMemory;
use pml_miners::AnyMiner;

use crate::gather::{Gathered, gather_rows};
use crate::tuples::efficient_tuple;
use crate::{DistributedError, PeerGroup};

/// A metric loss computed over the batches of all peers (PML's `DistributedLossWrapper`).
///
/// Each peer passes its own batch; the wrapper all-gathers the embeddings and labels of every
/// peer ([`all_gather`](crate::all_gather): this peer's rows first, then the others' in rank
/// order) so that each anchor meets positives and negatives from the whole global batch.
///
/// - `efficient = false`: the loss of the whole gathered batch (every peer computes the same
///   value), with the given indices tuple, or the miner's on the gathered batch.
/// - `efficient = true`: this peer's anchors against the gathered batch as reference set, with
///   the given indices tuple or all pairs (or the miner's, mined against the gathered batch),
///   minus each anchor's comparison with itself. Less compute per peer; the loss is a different
///   function: the sum over peers of each peer's anchors' loss.
///
/// Gradients flow only through this peer's own embeddings (the gathered rows of the other
/// peers are detached), and the loss is multiplied by the number of peers, so that averaging
/// the gradients over the peers (data-parallel training, [`DataParallel`](crate::DataParallel))
/// gives the update of one device with the whole batch: for `efficient = false`, the averaged
/// gradient of every parameter equals the gradient of the unwrapped loss on the concatenated
/// batch. With one peer ([`PeerGroup::single`]) the wrapped loss is returned as it is.
///
/// [`CrossBatchMemory`] works in the non-efficient mode: the gathered batch is enqueued on
/// every peer, so the memories stay identical; with an enqueue mask use
/// [`try_forward_with_enqueue_mask`](DistributedLossWrapper::try_forward_with_enqueue_mask).
///
/// Every peer must call the wrapper the same number of times, with the same embedding width
/// and with or without labels alike (otherwise every peer gets a
/// [`DistributedError::Mismatch`] or a timeout, never an endless wait).
///
/// # Shapes
/// - embeddings `[n, d]` (n may differ between peers), labels `[n]`, optional reference
///   `[m, d]` and `[m]` (gathered as well), indices tuple indexing the gathered batch
///   (non-efficient) or this peer's rows against the gathered reference (efficient)
/// - output `[1]`: `world_size ×` the loss
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Int, Tensor};
/// use pml_core::{LossInput, MetricLoss};
/// use pml_distributed::{DistributedLossWrapper, PeerGroup};
/// use pml_losses::ContrastiveLossConfig;
///
/// let device = Default::default();
/// let loss = ContrastiveLossConfig::new().init();
/// let wrapped = DistributedLossWrapper::<NdArray, _>::new(loss.clone(), false, PeerGroup::single())
///     .unwrap();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], &device);
/// let y = Tensor::<NdArray, 1, Int>::from_ints([0, 1, 0], &device);
/// let a = wrapped.forward(LossInput::new(x.clone(), y.clone())).into_scalar();
/// let b = loss.forward(LossInput::new(x, y)).into_scalar();
/// assert_eq!(a, b);
/// ```
#[derive(Module, Debug)]
pub struct DistributedLossWrapper<B: Backend, L> {
    /// The wrapped loss (PML's `loss`).
    pub loss: L,
    #[module(skip)]
    efficient: bool,
    #[module(skip)]
    group: PeerGroup,
    #[module(skip)]
    miner: Option<AnyMiner>,
    backend: PhantomData<B>,
}

impl<B: Backend, L: 'static> DistributedLossWrapper<B, L> {
    /// Wraps `loss` for the peers of `group` (PML's `DistributedLossWrapper(loss, efficient)`).
    ///
    /// # Errors
    /// [`PmlError::Unsupported`] for a [`CrossBatchMemory`] with `efficient = true`, which PML
    /// refuses too.
    pub fn new(loss: L, efficient: bool, group: PeerGroup) -> Result<Self, PmlError> {
        if efficient && TypeId::of::<L>() == TypeId::of::<CrossBatchMemory<B>>() {
            return Err(PmlError::Unsupported(
                "DistributedLossWrapper: CrossBatchMemory with efficient = true is not supported"
                    .into(),
            ));
        }
        Ok(Self {
            loss,
            efficient,
            group,
            miner: None,
            backend: PhantomData,
        })
    }
}

impl<B: Backend, L> DistributedLossWrapper<B, L> {
    /// Mines every call without an indices tuple with `miner`, as
    /// [`DistributedMinerWrapper`](crate::DistributedMinerWrapper) with the same `efficient`
    /// would, but on the batch gathered once for the loss (PML gathers twice: once in the miner
    /// wrapper, once in the loss wrapper). Lets a trainer that only knows a loss (such as
    /// `pml_train::trainers::MetricLossOnly`) mine across peers.
    pub fn with_miner(mut self, miner: AnyMiner) -> Self {
        self.miner = Some(miner);
        self
    }

    /// Whether this is the efficient mode.
    pub fn efficient(&self) -> bool {
        self.efficient
    }

    /// The peers.
    pub fn group(&self) -> &PeerGroup {
        &self.group
    }

    /// The scale applied to the loss: the number of peers.
    fn scale(&self) -> f64 {
        self.group.world_size() as f64
    }

    /// The wrapped loss's input on this peer: the gathered batch (non-efficient) or this peer's
    /// batch against the gathered reference (efficient). Mines only when `mine` (a second
    /// call for [`MetricLoss::reduce`] needs the batch, not the tuple).
    fn inner_input(
        &self,
        input: &LossInput<B>,
        mine: bool,
    ) -> Result<LossInput<B>, DistributedError> {
        if self.group.world_size() == 1 {
            let mut input = input.clone();
            if mine
                && input.indices_tuple.is_none()
                && let (Some(m), Some(labels)) = (&self.miner, &input.labels)
            {
                let tuple = m.mine(
                    input.embeddings.clone(),
                    labels.clone(),
                    input.reference.clone(),
                );
                input.indices_tuple = Some(tuple);
            }
            return Ok(input);
        }
        let batch = gather_rows(
            &self.group,
            "embeddings",
            input.embeddings.clone(),
            input.labels.clone(),
            None,
        )?;
        let reference = match &input.reference {
            Some(r) => Some(gather_rows(
                &self.group,
                "ref_emb",
                r.embeddings.clone(),
                r.labels.clone(),
                None,
            )?),
            None => None,
        };
        let as_reference = |g: Gathered<B>| Reference {
            embeddings: g.embeddings,
            labels: g.labels,
        };
        if self.efficient {
            let all = as_reference(reference.unwrap_or(batch));
            let tuple = match &input.indices_tuple {
                Some(t) => Some(t.clone()),
                None if !mine => None,
                None => {
                    let (labels, ref_labels) = match (&input.labels, &all.labels) {
                        (Some(l), Some(r)) => (l.clone(), r.clone()),
                        _ => {
                            return Err(PmlError::invalid_input(
                                "labels",
                                "DistributedLossWrapper(efficient = true) needs labels (and \
                                 ref_labels with ref_emb) when no indices_tuple is given",
                            )
                            .into());
                        }
                    };
                    Some(efficient_tuple(
                        input.embeddings.clone(),
                        labels,
                        all.embeddings.clone(),
                        ref_labels,
                        self.miner.as_ref().map(|m| m as &dyn Miner<B>),
                    ))
                }
            };
            Ok(LossInput {
                embeddings: input.embeddings.clone(),
                labels: input.labels.clone(),
                indices_tuple: tuple,
                reference: Some(all),
            })
        } else {
            let reference = reference.map(as_reference);
            let tuple = match (&input.indices_tuple, &self.miner, &batch.labels) {
                (Some(t), _, _) => Some(t.clone()),
                (None, Some(m), Some(labels)) if mine => {
                    Some(m.mine(batch.embeddings.clone(), labels.clone(), reference.clone()))
                }
                _ => None,
            };
            Ok(LossInput {
                embeddings: batch.embeddings,
                labels: batch.labels,
                indices_tuple: tuple,
                reference,
            })
        }
    }
}

impl<B: Backend, L: MetricLoss<B>> DistributedLossWrapper<B, L> {
    /// The distributed loss (`world_size ×` the wrapped loss of the gathered input), or an
    /// error naming the peer and the cause when the peers cannot agree or do not answer.
    ///
    /// # Errors
    /// As [`all_gather`](crate::all_gather).
    ///
    /// # Panics
    /// Where the wrapped loss panics on its (gathered) input.
    pub fn try_forward_distributed(
        &self,
        input: LossInput<B>,
    ) -> Result<Tensor<B, 1>, DistributedError> {
        let inner = self.inner_input(&input, true)?;
        let loss = self.loss.forward(inner);
        Ok(if self.group.world_size() == 1 {
            loss
        } else {
            loss.mul_scalar(self.scale())
        })
    }
}

impl<B: Backend> DistributedLossWrapper<B, CrossBatchMemory<B>> {
    /// [`CrossBatchMemory::forward_with_enqueue_mask`] over the gathered batch and the gathered
    /// mask (PML's `forward_cross_batch`), times the number of peers; without a mask, the plain
    /// distributed loss.
    ///
    /// # Shapes
    /// embeddings `[n, embedding_size]`, labels `[n]`, `enqueue_mask` `[n]`; output `[1]`.
    ///
    /// # Errors
    /// [`PmlError::Unsupported`] with a reference set (PML: CrossBatchMemory is not compatible
    /// with `ref_emb`), otherwise as [`all_gather`](crate::all_gather).
    pub fn try_forward_with_enqueue_mask(
        &self,
        input: LossInput<B>,
        enqueue_mask: Option<Tensor<B, 1, Bool>>,
    ) -> Result<Tensor<B, 1>, DistributedError> {
        if input.reference.is_some() {
            return Err(PmlError::Unsupported(
                "DistributedLossWrapper: CrossBatchMemory is not compatible with ref_emb and ref_labels"
                    .into(),
            )
            .into());
        }
        let Some(mask) = enqueue_mask else {
            return self.try_forward_distributed(input);
        };
        if self.group.world_size() == 1 {
            return Ok(self.loss.forward_with_enqueue_mask(input, mask));
        }
        let g = gather_rows(
            &self.group,
            "embeddings",
            input.embeddings.clone(),
            input.labels.clone(),
            Some(mask),
        )?;
        let inner = LossInput {
            embeddings: g.embeddings,
            labels: g.labels,
            indices_tuple: input.indices_tuple,
            reference: None,
        };
        let mask = g.enqueue_mask.expect("the mask was gathered");
        Ok(self
            .loss
            .forward_with_enqueue_mask(inner, mask)
            .mul_scalar(self.scale()))
    }
}

/// The wrapper is itself a [`MetricLoss`], so trainers that take a loss (such as
/// `pml_train::trainers::MetricLossOnly`) train with it unchanged.
///
/// # Panics
/// [`forward`](MetricLoss::forward), [`forward_terms`](MetricLoss::forward_terms) and
/// [`reduce`](MetricLoss::reduce) panic with the [`DistributedError`]'s message (naming the peer
/// and the cause) where [`try_forward_distributed`](DistributedLossWrapper::try_forward_distributed)
/// returns it; [`try_forward`](MetricLoss::try_forward) returns it as a [`PmlError`].
impl<B: Backend, L: MetricLoss<B>> MetricLoss<B> for DistributedLossWrapper<B, L> {
    /// The wrapped loss's terms on the gathered input (not yet scaled: [`reduce`] scales).
    ///
    /// [`reduce`]: MetricLoss::reduce
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        let inner = self
            .inner_input(input, true)
            .unwrap_or_else(|e| panic!("{e}"));
        self.loss.forward_terms(&inner)
    }

    /// Reduces with the wrapped loss's reducer on the gathered input (gathered again: one more
    /// collective call, made by every peer alike) and multiplies by the number of peers.
    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        let inner = self
            .inner_input(input, false)
            .unwrap_or_else(|e| panic!("{e}"));
        let loss = self.loss.reduce(terms, &inner);
        if self.group.world_size() == 1 {
            loss
        } else {
            loss.mul_scalar(self.scale())
        }
    }

    fn forward(&self, input: LossInput<B>) -> Tensor<B, 1> {
        self.try_forward_distributed(input)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_forward(&self, input: LossInput<B>) -> Result<Tensor<B, 1>, PmlError> {
        input.check()?;
        Ok(self.try_forward_distributed(input)?)
    }
}
