//! [`DistributedMinerWrapper`]: PML's `DistributedMinerWrapper`.

use burn::tensor::{Int, Tensor, backend::Backend};
use pml_core::{IndicesTuple, Miner, PmlError, Reference};

use crate::gather::gather_rows;
use crate::tuples::efficient_tuple;
use crate::{DistributedError, PeerGroup};

/// A miner run over the batches of all peers (PML's `DistributedMinerWrapper`).
///
/// - `efficient = false`: mines the gathered batch (this peer's rows first, then the other
///   peers' in rank order); the tuple indexes the gathered batch, as the non-efficient
///   [`DistributedLossWrapper`](crate::DistributedLossWrapper) expects.
/// - `efficient = true`: mines this peer's anchors against the gathered batch (or gathered
///   reference set) and removes each anchor's comparison with itself; the tuple indexes this
///   peer's rows (anchors) and the gathered reference (positives, negatives), as the efficient
///   loss wrapper expects.
///
/// With one peer the wrapped miner is called as it is.
///
/// # Shapes
/// embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]`, `[m]`; the tuple's index
/// tensors are `[k]`.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Int, Tensor};
/// use pml_distributed::{DistributedMinerWrapper, PeerGroup};
/// use pml_miners::PairMarginMinerConfig;
///
/// let device = Default::default();
/// let miner = DistributedMinerWrapper::new(PairMarginMinerConfig::new().init(), false, PeerGroup::single());
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], &device);
/// let y = Tensor::<NdArray, 1, Int>::from_ints([0, 1, 0], &device);
/// let tuple = miner.try_mine(x, y, None).unwrap();
/// assert!(tuple.num_pos_pairs() <= 2);
/// ```
#[derive(Clone, Debug)]
pub struct DistributedMinerWrapper<M> {
    /// The wrapped miner (PML's `miner`).
    pub miner: M,
    efficient: bool,
    group: PeerGroup,
}

impl<M> DistributedMinerWrapper<M> {
    /// Wraps `miner` for the peers of `group` (PML's `DistributedMinerWrapper(miner, efficient)`).
    pub fn new(miner: M, efficient: bool, group: PeerGroup) -> Self {
        Self {
            miner,
            efficient,
            group,
        }
    }

    /// Whether this is the efficient mode.
    pub fn efficient(&self) -> bool {
        self.efficient
    }

    /// Mines across the peers.
    ///
    /// # Errors
    /// As [`all_gather`](crate::all_gather); an invalid input when a reference set has no
    /// labels in the efficient mode.
    ///
    /// # Panics
    /// Where the wrapped miner panics on its (gathered) input.
    pub fn try_mine<B: Backend>(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> Result<IndicesTuple<B>, DistributedError>
    where
        M: Miner<B>,
    {
        if self.group.world_size() == 1 {
            return Ok(self.miner.mine(embeddings, labels, reference));
        }
        let batch = gather_rows(
            &self.group,
            "embeddings",
            embeddings.clone(),
            Some(labels.clone()),
            None,
        )?;
        let reference = match reference {
            Some(r) => Some(gather_rows(
                &self.group,
                "ref_emb",
                r.embeddings,
                r.labels,
                None,
            )?),
            None => None,
        };
        if self.efficient {
            let all = reference.unwrap_or(batch);
            let ref_labels = all.labels.ok_or_else(|| {
                PmlError::invalid_input(
                    "ref_labels",
                    "DistributedMinerWrapper(efficient = true) needs ref_labels with ref_emb",
                )
            })?;
            Ok(efficient_tuple(
                embeddings,
                labels,
                all.embeddings,
                ref_labels,
                Some(&self.miner as &dyn Miner<B>),
            ))
        } else {
            let labels = batch.labels.expect("labels were gathered");
            let reference = reference.map(|r| Reference {
                embeddings: r.embeddings,
                labels: r.labels,
            });
            Ok(self.miner.mine(batch.embeddings, labels, reference))
        }
    }
}

/// # Panics
/// [`mine`](Miner::mine) panics with the [`DistributedError`]'s message where
/// [`try_mine`](DistributedMinerWrapper::try_mine) returns it.
impl<B: Backend, M: Miner<B>> Miner<B> for DistributedMinerWrapper<M> {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        self.try_mine(embeddings, labels, reference)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
