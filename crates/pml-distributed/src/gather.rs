//! The all-gather of embeddings and labels (PML's `all_gather_embeddings_and_labels` and
//! `gather`), composed from burn-collective's all-reduce.

use burn::tensor::{Bool, ElementConversion, Int, Tensor, backend::Backend};
use pml_core::PmlError;

use crate::{DistributedError, PeerGroup};

/// Labels travel as floats through the all-reduce: integers up to 2^24 are exact in `f32`.
pub const MAX_ABS_LABEL: i64 = 1 << 24;

/// Per-peer metadata exchanged first: rows, width, has labels, has mask, max |label|.
const META: usize = 5;

/// Every peer's batch, this peer's rows first and the others' after them in rank order (PML's
/// order: `torch.distributed.all_gather`, own rank removed, appended to the local batch).
///
/// The local rows are the caller's tensors, so gradients flow through them; the other peers'
/// rows are detached copies (as after PML's `all_gather`).
#[derive(Clone, Debug)]
pub struct Gathered<B: Backend> {
    /// `[N, d]` with `N` the sum of the peers' rows.
    pub embeddings: Tensor<B, 2>,
    /// `[N]` when the peers passed labels.
    pub labels: Option<Tensor<B, 1, Int>>,
    /// `[N]` when the peers passed an enqueue mask (CrossBatchMemory).
    pub enqueue_mask: Option<Tensor<B, 1, Bool>>,
    /// The number of rows of each peer, by rank.
    pub rows: Vec<usize>,
}

/// All-gathers `embeddings` (`[n, d]`) and `labels` (`[n]`) of every peer of `group`.
///
/// Two all-reduces: one of a `[world_size, 5]` table of each peer's row count and width (read
/// back to the host, which lets the peers check that they agree before moving the batch), then
/// one of a zero `[N, d + 1]` tensor in which each peer has written its rows (and labels, as
/// floats) into its own slot. Peers may have different row counts.
///
/// # Shapes
/// - `embeddings`: `[n, d]`, `d` the same on every peer; `labels`: `[n]`
/// - output: `[N, d]` and `[N]`, `N` the sum of the peers' `n`
///
/// # Errors
/// [`DistributedError::Mismatch`] when the peers disagree on the width or on passing labels (every
/// peer gets the error); an invalid input when `labels` is not as long as the batch or a label
/// is beyond ±2^24; timeouts and collective failures as in [`PeerGroup::all_reduce_sum`].
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Int, Tensor};
/// use pml_distributed::{PeerGroup, all_gather};
///
/// // With one peer the gathered batch is the batch itself.
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::ones([3, 4], &device);
/// let y = Tensor::<NdArray, 1, Int>::from_ints([0, 1, 1], &device);
/// let g = all_gather(&PeerGroup::single(), x, Some(y)).unwrap();
/// assert_eq!(g.embeddings.dims(), [3, 4]);
/// assert_eq!(g.rows, vec![3]);
/// ```
pub fn all_gather<B: Backend>(
    group: &PeerGroup,
    embeddings: Tensor<B, 2>,
    labels: Option<Tensor<B, 1, Int>>,
) -> Result<Gathered<B>, DistributedError> {
    gather_rows(group, "embeddings", embeddings, labels, None)
}

fn describe(values: &[usize]) -> String {
    values
        .iter()
        .enumerate()
        .map(|(p, v)| format!("peer {p}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`all_gather`] with an optional boolean column and the name of the argument for messages.
pub(crate) fn gather_rows<B: Backend>(
    group: &PeerGroup,
    argument: &str,
    embeddings: Tensor<B, 2>,
    labels: Option<Tensor<B, 1, Int>>,
    enqueue_mask: Option<Tensor<B, 1, Bool>>,
) -> Result<Gathered<B>, DistributedError> {
    let [n, d] = embeddings.dims();
    for (name, len) in [
        ("labels", labels.as_ref().map(|l| l.dims()[0])),
        ("enqueue_mask", enqueue_mask.as_ref().map(|m| m.dims()[0])),
    ] {
        if let Some(len) = len
            && len != n
        {
            return Err(PmlError::invalid_input(
                name,
                format!(
                    "length {len} differs from the number of {argument} {n} (shape [{n}, {d}])"
                ),
            )
            .into());
        }
    }
    let world = group.world_size();
    if world == 1 {
        return Ok(Gathered {
            embeddings,
            labels,
            enqueue_mask,
            rows: vec![n],
        });
    }
    let device = embeddings.device();
    let max_label = match &labels {
        Some(l) if n > 0 => l.clone().abs().max().into_scalar().elem::<i64>(),
        _ => 0,
    };
    if max_label > MAX_ABS_LABEL {
        return Err(PmlError::invalid_input(
            "labels",
            format!(
                "|label| up to {max_label}: labels travel as floats between peers and must lie within ±{MAX_ABS_LABEL}"
            ),
        )
        .into());
    }

    // 1. Who has what.
    let rank = group.rank();
    let mut table = vec![0.0f32; world * META];
    table[rank * META..(rank + 1) * META].copy_from_slice(&[
        n as f32,
        d as f32,
        labels.is_some() as u8 as f32,
        enqueue_mask.is_some() as u8 as f32,
        max_label as f32,
    ]);
    let table = Tensor::<B, 1>::from_floats(table.as_slice(), &device).reshape([world, META]);
    let table: Vec<usize> = group
        .all_reduce_sum(table)?
        .into_data()
        .iter::<f64>()
        .map(|v| v.round() as usize)
        .collect();
    let column = |c: usize| (0..world).map(|p| table[p * META + c]).collect::<Vec<_>>();
    let (rows, widths, has_labels, has_mask) = (column(0), column(1), column(2), column(3));
    if widths.iter().any(|&w| w != d) {
        return Err(DistributedError::Mismatch {
            argument: argument.into(),
            peer: rank,
            details: format!("widths differ ({})", describe(&widths)),
        });
    }
    for (name, flags) in [("labels", &has_labels), ("enqueue_mask", &has_mask)] {
        if flags.iter().any(|&f| f != flags[rank]) {
            return Err(DistributedError::Mismatch {
                argument: name.into(),
                peer: rank,
                details: format!(
                    "some peers pass `{name}` and others do not (1 = passed; {})",
                    describe(flags)
                ),
            });
        }
    }

    // 2. Each peer writes its rows into its slot of a zero tensor; the sum is the gather.
    let total: usize = rows.iter().sum();
    let offset: usize = rows[..rank].iter().sum();
    let mut columns = vec![embeddings.clone().detach()];
    if let Some(l) = &labels {
        columns.push(l.clone().float().reshape([n, 1]));
    }
    if let Some(m) = &enqueue_mask {
        columns.push(m.clone().float().reshape([n, 1]));
    }
    let local = Tensor::cat(columns, 1);
    let k = local.dims()[1];
    let mut padded = Tensor::<B, 2>::zeros([total, k], &device);
    if n > 0 {
        padded = padded.slice_assign([offset..offset + n, 0..k], local);
    }
    let summed = group.all_reduce_sum(padded)?;
    let mut pieces = Vec::new();
    if offset > 0 {
        pieces.push(summed.clone().slice([0..offset, 0..k]));
    }
    if offset + n < total {
        pieces.push(summed.slice([offset + n..total, 0..k]));
    }
    if pieces.is_empty() {
        return Ok(Gathered {
            embeddings,
            labels,
            enqueue_mask,
            rows,
        });
    }
    let others = Tensor::cat(pieces, 0);
    let m = total - n;
    let mut col = d;
    let mut next_column = || {
        let c = others.clone().slice([0..m, col..col + 1]).reshape([m]);
        col += 1;
        c
    };
    let gathered_labels = labels.map(|l| Tensor::cat(vec![l, next_column().round().int()], 0));
    let gathered_mask =
        enqueue_mask.map(|mask| Tensor::cat(vec![mask, next_column().greater_elem(0.5)], 0));
    Ok(Gathered {
        embeddings: Tensor::cat(vec![embeddings, others.slice([0..m, 0..d])], 0),
        labels: gathered_labels,
        enqueue_mask: gathered_mask,
        rows,
    })
}
