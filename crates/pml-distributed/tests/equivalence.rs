//! The distributed wrappers on 2 and 4 peers (threads, NdArray) against the unwrapped loss on
//! one device: loss value and gradient w.r.t. every embedding, both modes, with and without a
//! miner, for ContrastiveLoss, TripletMarginLoss, MultiSimilarityLoss and NTXentLoss.
//!
//! What "equal" means (PML's own test, `tests/utils/test_distributed.py`):
//! - non-efficient: every peer's wrapped loss is `world ×` the unwrapped loss of the
//!   concatenated batch, and the gradient of each peer's loss w.r.t. its own embeddings,
//!   averaged over the peers as data-parallel training does (`/ world`), is the unwrapped
//!   loss's gradient w.r.t. those rows;
//! - efficient: the same against `Σ_p loss(local_p vs [local_p, others detached])`, the loss
//!   the efficient mode defines.

mod common;

use std::sync::Arc;
use std::time::Duration;

use burn::tensor::{Int, Tensor, TensorData};
use common::{Ad, assert_close, labels, run_peers, turn, values};
use pml_core::{IndicesTuple, LossInput, MetricLoss, Miner, Reference, labels::all_pairs};
use pml_distributed::{DistributedLossWrapper, DistributedMinerWrapper};
use pml_losses::{
    ContrastiveLossConfig, MultiSimilarityLossConfig, NTXentLossConfig, TripletMarginLossConfig,
};
use pml_miners::{AnyMiner, PairMarginMinerConfig};

const ROWS: usize = 6;
const DIM: usize = 5;
const CLASSES: i64 = 3;
const REL: f32 = 1e-4;

/// The global batch of `world` peers: `[world * ROWS, DIM]` and labels.
struct Batch {
    emb: Vec<f32>,
    labels: Vec<i64>,
}

fn batch(world: usize, seed: u64) -> Batch {
    Batch {
        emb: values(world * ROWS * DIM, seed),
        labels: labels(world * ROWS, CLASSES, seed + 1),
    }
}

fn emb_tensor(values: &[f32], rows: usize) -> Tensor<Ad, 2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [rows, DIM]),
        &Default::default(),
    )
}

fn label_tensor(values: &[i64]) -> Tensor<Ad, 1, Int> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len()]),
        &Default::default(),
    )
}

fn miner() -> AnyMiner {
    AnyMiner::PairMargin(
        PairMarginMinerConfig::new()
            .with_pos_margin(0.8)
            .with_neg_margin(1.2)
            .init(),
    )
}

/// PML's `remove_self_comparisons` for a reference that starts with the batch, written here
/// independently of the crate: keep positives whose anchor is not the positive.
fn without_self(tuple: IndicesTuple<Ad>) -> IndicesTuple<Ad> {
    let keep = |a: &Tensor<Ad, 1, Int>, p: &Tensor<Ad, 1, Int>| {
        let a = a.to_data().convert::<i64>().to_vec::<i64>().unwrap();
        let p = p.to_data().convert::<i64>().to_vec::<i64>().unwrap();
        let k: Vec<i64> = (0..a.len())
            .filter(|&i| a[i] != p[i])
            .map(|i| i as i64)
            .collect();
        Tensor::<Ad, 1, Int>::from_data(TensorData::new(k.clone(), [k.len()]), &Default::default())
    };
    match tuple {
        IndicesTuple::Pairs { a1, p, a2, n } => {
            let k = keep(&a1, &p);
            IndicesTuple::pairs(a1.select(0, k.clone()), p.select(0, k), a2, n)
        }
        IndicesTuple::Triplets { a, p, n } => {
            let k = keep(&a, &p);
            IndicesTuple::triplets(
                a.select(0, k.clone()),
                p.select(0, k.clone()),
                n.select(0, k),
            )
        }
    }
}

/// The single-device reference: (loss, gradient w.r.t. the global batch).
fn reference<L: MetricLoss<Ad>>(
    loss: &L,
    b: &Batch,
    world: usize,
    efficient: bool,
    mine: bool,
) -> (f32, Vec<f32>) {
    let n = world * ROWS;
    let emb = emb_tensor(&b.emb, n).require_grad();
    let lab = label_tensor(&b.labels);
    let value = if !efficient {
        let mut input = LossInput::new(emb.clone(), lab.clone());
        if mine {
            input = input.with_indices(miner().mine(emb.clone(), lab.clone(), None));
        }
        loss.forward(input)
    } else {
        let parts: Vec<Tensor<Ad, 1>> = (0..world)
            .map(|p| {
                let rows = p * ROWS..(p + 1) * ROWS;
                let curr = emb.clone().slice([rows.clone(), 0..DIM]);
                let curr_labels = lab.clone().slice(rows.clone());
                let mut others = vec![curr.clone()];
                let mut other_labels = vec![curr_labels.clone()];
                for q in (0..world).filter(|&q| q != p) {
                    let r = q * ROWS..(q + 1) * ROWS;
                    others.push(emb.clone().detach().slice([r.clone(), 0..DIM]));
                    other_labels.push(lab.clone().slice(r));
                }
                let ref_emb = Tensor::cat(others, 0);
                let ref_labels = Tensor::cat(other_labels, 0);
                let tuple = if mine {
                    miner().mine(
                        curr.clone(),
                        curr_labels.clone(),
                        Some(Reference {
                            embeddings: ref_emb.clone(),
                            labels: Some(ref_labels.clone()),
                        }),
                    )
                } else {
                    all_pairs(&curr_labels, Some(&ref_labels))
                };
                loss.forward(
                    LossInput::new(curr, curr_labels)
                        .with_indices(without_self(tuple))
                        .with_reference(ref_emb, ref_labels),
                )
            })
            .collect();
        Tensor::cat(parts, 0).sum()
    };
    let grads = value.backward();
    let grad = emb.grad(&grads).expect("the batch has a gradient");
    (
        value.into_scalar(),
        grad.into_data().convert::<f32>().to_vec().unwrap(),
    )
}

/// How a peer gets its tuple in the miner case.
#[derive(Clone, Copy)]
enum Mining {
    None,
    /// `DistributedMinerWrapper` then the loss wrapper with the tuple (PML's usage).
    MinerWrapper,
    /// The loss wrapper's own miner (`with_miner`).
    LossWrapper,
}

/// Runs the wrapped loss on `world` peers; returns each peer's (loss, gradient of its rows).
fn distributed<L, F>(
    make_loss: F,
    b: &Batch,
    world: usize,
    efficient: bool,
    mining: Mining,
) -> Vec<(f32, Vec<f32>)>
where
    L: MetricLoss<Ad> + 'static,
    F: Fn() -> L + Send + Sync + 'static,
{
    let emb = Arc::new(b.emb.clone());
    let lab = Arc::new(b.labels.clone());
    run_peers(world, Duration::from_secs(60), move |group| {
        let p = group.rank();
        let x = emb_tensor(&emb[p * ROWS * DIM..(p + 1) * ROWS * DIM], ROWS).require_grad();
        let y = label_tensor(&lab[p * ROWS..(p + 1) * ROWS]);
        let mut wrapper =
            DistributedLossWrapper::<Ad, _>::new(make_loss(), efficient, group.clone()).unwrap();
        let mut input = LossInput::new(x.clone(), y.clone());
        match mining {
            Mining::None => {}
            Mining::MinerWrapper => {
                let m = DistributedMinerWrapper::new(miner(), efficient, group.clone());
                input = input.with_indices(m.try_mine(x.clone(), y.clone(), None).unwrap());
            }
            Mining::LossWrapper => wrapper = wrapper.with_miner(miner()),
        }
        let value = wrapper.try_forward_distributed(input).unwrap();
        let grads = value.backward();
        let grad = x.grad(&grads).expect("local rows have a gradient");
        (
            value.into_scalar(),
            grad.into_data().convert::<f32>().to_vec().unwrap(),
        )
    })
}

fn check<L, F>(name: &str, make_loss: F)
where
    L: MetricLoss<Ad> + 'static,
    F: Fn() -> L + Send + Sync + Clone + 'static,
{
    let _turn = turn();
    for world in [2usize, 4] {
        for efficient in [false, true] {
            for mining in [Mining::None, Mining::MinerWrapper, Mining::LossWrapper] {
                let mine = !matches!(mining, Mining::None);
                let case = format!(
                    "{name} world={world} efficient={efficient} miner={}",
                    match mining {
                        Mining::None => "none",
                        Mining::MinerWrapper => "DistributedMinerWrapper",
                        Mining::LossWrapper => "with_miner",
                    }
                );
                let b = batch(world, 7 + world as u64);
                let (ref_loss, ref_grad) = reference(&make_loss(), &b, world, efficient, mine);
                assert!(
                    ref_grad.iter().any(|g| g.abs() > 1e-6),
                    "{case}: the reference gradient is zero: the case tests nothing"
                );
                let peers = distributed(make_loss.clone(), &b, world, efficient, mining);
                let w = world as f32;
                let values: Vec<f32> = peers.iter().map(|(v, _)| v / w).collect();
                if efficient {
                    let total: f32 = values.iter().sum();
                    assert_close(&format!("{case}: loss"), &[total], &[ref_loss], REL);
                } else {
                    for (p, v) in values.iter().enumerate() {
                        assert_close(
                            &format!("{case}: loss of peer {p}"),
                            &[*v],
                            &[ref_loss],
                            REL,
                        );
                    }
                }
                let grad: Vec<f32> = peers
                    .iter()
                    .flat_map(|(_, g)| g.iter().map(|x| x / w))
                    .collect();
                assert_close(&format!("{case}: gradient"), &grad, &ref_grad, REL);
            }
        }
    }
}

#[test]
fn contrastive_loss_matches_one_device() {
    check("ContrastiveLoss", || ContrastiveLossConfig::new().init());
}

#[test]
fn triplet_margin_loss_matches_one_device() {
    check("TripletMarginLoss", || {
        TripletMarginLossConfig::new().with_margin(0.5).init()
    });
}

#[test]
fn multi_similarity_loss_matches_one_device() {
    check("MultiSimilarityLoss", || {
        MultiSimilarityLossConfig::new().init()
    });
}

#[test]
fn ntxent_loss_matches_one_device() {
    check("NTXentLoss", || {
        NTXentLossConfig::new().with_temperature(0.5).init()
    });
}

/// CrossBatchMemory under the non-efficient wrapper: every peer enqueues the gathered batch,
/// so over several iterations (the memory large enough not to wrap: once it wraps, which rows
/// a peer evicts depends on its local-first order, in PML as here) each peer's loss is `world ×` the loss of one CrossBatchMemory fed
/// the concatenated batches, with and without an enqueue mask (PML's `forward_cross_batch`).
#[test]
fn cross_batch_memory_matches_one_device() {
    use burn::tensor::Bool;
    use pml_losses::{CrossBatchMemoryConfig, LossConfig};

    const ITERATIONS: u64 = 3;
    let make = || {
        CrossBatchMemoryConfig::new(
            Box::new(LossConfig::Contrastive(ContrastiveLossConfig::new())),
            DIM,
        )
        .with_memory_size(128)
        .init::<Ad>(&Default::default())
    };
    let mask_values = |n: usize, it: u64| -> Vec<bool> {
        values(n, 50 + it).into_iter().map(|v| v > 0.0).collect()
    };
    let mask_tensor = |m: &[bool]| {
        Tensor::<Ad, 1, Bool>::from_data(
            TensorData::new(m.to_vec(), [m.len()]),
            &Default::default(),
        )
    };
    let _turn = turn();
    for world in [2usize, 4] {
        for masked in [false, true] {
            let case = format!("CrossBatchMemory world={world} enqueue_mask={masked}");
            let n = world * ROWS;
            // One device.
            let single = make();
            let mut expected = Vec::new();
            for it in 0..ITERATIONS {
                let b = batch(world, 300 + it);
                let emb = emb_tensor(&b.emb, n).require_grad();
                let input = LossInput::new(emb.clone(), label_tensor(&b.labels));
                let value = if masked {
                    single.forward_with_enqueue_mask(input, mask_tensor(&mask_values(n, it)))
                } else {
                    single.forward(input)
                };
                let grads = value.backward();
                let grad = emb.grad(&grads).expect("the batch has a gradient");
                expected.push((
                    value.into_scalar(),
                    grad.into_data().convert::<f32>().to_vec::<f32>().unwrap(),
                ));
            }
            // `world` peers.
            let peers = run_peers(world, Duration::from_secs(60), move |group| {
                let p = group.rank();
                let wrapper = DistributedLossWrapper::<Ad, _>::new(make(), false, group).unwrap();
                (0..ITERATIONS)
                    .map(|it| {
                        let b = batch(world, 300 + it);
                        let rows = p * ROWS..(p + 1) * ROWS;
                        let x = emb_tensor(&b.emb[rows.start * DIM..rows.end * DIM], ROWS)
                            .require_grad();
                        let input =
                            LossInput::new(x.clone(), label_tensor(&b.labels[rows.clone()]));
                        let mask = masked.then(|| mask_tensor(&mask_values(n, it)[rows]));
                        let value = wrapper.try_forward_with_enqueue_mask(input, mask).unwrap();
                        let grads = value.backward();
                        let grad = x
                            .grad(&grads)
                            .map(|g| g.into_data().convert::<f32>().to_vec::<f32>().unwrap())
                            .unwrap_or_else(|| vec![0.0; ROWS * DIM]);
                        (value.into_scalar(), grad)
                    })
                    .collect::<Vec<_>>()
            });
            let w = world as f32;
            for (it, (ref_loss, ref_grad)) in expected.iter().enumerate() {
                assert!(*ref_loss > 0.0, "{case}: a zero loss tests nothing");
                for (p, peer) in peers.iter().enumerate() {
                    assert_close(
                        &format!("{case} iteration {it}: loss of peer {p}"),
                        &[peer[it].0 / w],
                        &[*ref_loss],
                        REL,
                    );
                }
                let grad: Vec<f32> = peers
                    .iter()
                    .flat_map(|peer| peer[it].1.iter().map(|g| g / w))
                    .collect();
                assert_close(
                    &format!("{case} iteration {it}: gradient"),
                    &grad,
                    ref_grad,
                    REL,
                );
            }
        }
    }
}
