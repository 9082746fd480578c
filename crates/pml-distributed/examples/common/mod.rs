//! What both examples share: synthetic clustered data, the network, one peer's training run.

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::SgdConfig;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use pml_distributed::{DataParallel, DistributedError, DistributedLossWrapper, PeerGroup};
use pml_losses::TripletMarginLossConfig;
use pml_miners::{AnyMiner, MultiSimilarityMinerConfig};
use pml_train::datasets::VectorBatch;
use pml_train::trainers::{Embedder, MetricLossOnly};

/// The training backend.
pub type Ad = Autodiff<NdArray>;

pub const IN: usize = 16;
pub const OUT: usize = 8;
pub const CLASSES: usize = 4;
/// Rows of each peer's share of a global batch.
pub const ROWS_PER_PEER: usize = 32;
pub const STEPS: usize = 30;
pub const LR: f64 = 0.1;

#[derive(Module, Debug)]
pub struct Net<B: Backend> {
    fc: Linear<B>,
}

impl<B: Backend> Embedder<B> for Net<B> {
    type Batch = VectorBatch<B>;
    fn embed(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc.forward(x)
    }
}

/// A deterministic 64-bit LCG in [-1, 1).
fn noise(state: &mut u64) -> f32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// `n` points of `CLASSES` noisy clusters (the same for a given `seed` on every peer).
pub fn clusters(n: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut state = 12345u64;
    let centers: Vec<f32> = (0..CLASSES * IN).map(|_| noise(&mut state)).collect();
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut x = Vec::with_capacity(n * IN);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % CLASSES;
        y.push(c as i64);
        x.extend((0..IN).map(|k| centers[c * IN + k] + 1.5 * noise(&mut state)));
    }
    (x, y)
}

/// Rows `rows` of the global batch of `step`, for `world` peers.
pub fn batch(step: usize, rank: usize, world: usize) -> VectorBatch<Ad> {
    let (x, y) = clusters(world * ROWS_PER_PEER, step as u64 + 1);
    let rows = rank * ROWS_PER_PEER..(rank + 1) * ROWS_PER_PEER;
    let device = Default::default();
    VectorBatch {
        images: Tensor::from_data(
            TensorData::new(
                x[rows.start * IN..rows.end * IN].to_vec(),
                [ROWS_PER_PEER, IN],
            ),
            &device,
        ),
        labels: Tensor::<Ad, 1, Int>::from_data(
            TensorData::new(y[rows].to_vec(), [ROWS_PER_PEER]),
            &device,
        ),
    }
}

/// Precision@1 of the embeddings of a held-out set (nearest other point has the same label).
pub fn precision_at_1(net: &Net<Ad>) -> f32 {
    let (x, y) = clusters(200, 999);
    let x = Tensor::<Ad, 2>::from_data(TensorData::new(x, [200, IN]), &Default::default());
    let e = net.embed(x).detach();
    let sq = e.clone().powf_scalar(2.0).sum_dim(1);
    let d = sq.clone() + sq.transpose() - e.clone().matmul(e.transpose()).mul_scalar(2.0);
    let d = d + Tensor::<Ad, 2>::eye(200, &Default::default()).mul_scalar(1e9);
    let nearest: Vec<i64> = d.argmin(1).into_data().convert::<i64>().to_vec().unwrap();
    let hits = nearest
        .iter()
        .enumerate()
        .filter(|(i, j)| y[*i] == y[**j as usize])
        .count();
    hits as f32 / 200.0
}

/// Trains on this peer: TripletMarginLoss over the gathered global batch, mined with
/// MultiSimilarityMiner across peers, SGD, gradients averaged over the peers. Returns the
/// trained network.
pub fn train(group: PeerGroup) -> Result<Net<Ad>, DistributedError> {
    let rank = group.rank();
    let world = group.world_size();
    let net = Net {
        fc: LinearConfig::new(IN, OUT).init(&Default::default()),
    };
    let loss = DistributedLossWrapper::new(
        TripletMarginLossConfig::new().with_margin(0.2).init(),
        false,
        group.clone(),
    )?
    .with_miner(AnyMiner::MultiSimilarity(
        MultiSimilarityMinerConfig::new().with_epsilon(0.1).init(),
    ));
    let mut dp = DataParallel::new(
        MetricLossOnly::new(net, loss),
        SgdConfig::new().init(),
        group,
    )?;
    if rank == 0 {
        println!(
            "{world} peer(s), {} rows per step, precision@1 before: {:.3}",
            world * ROWS_PER_PEER,
            precision_at_1(&dp.trainer().model)
        );
    }
    for step in 0..STEPS {
        let out = dp.step(batch(step, rank, world), LR)?;
        if rank == 0 && step % 5 == 0 {
            // The wrapped loss is `world ×` the global loss.
            println!("step {step:>2}: loss {:.4}", out.loss / world as f64);
        }
    }
    let net = dp.into_trainer().model;
    if rank == 0 {
        println!("precision@1 after: {:.3}", precision_at_1(&net));
    }
    Ok(net)
}

/// A checksum of the network's parameters: equal on every peer when the replicas agree.
pub fn checksum(net: &Net<Ad>) -> f64 {
    let w: Vec<f32> = net
        .fc
        .weight
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap();
    w.iter()
        .enumerate()
        .map(|(i, v)| (i + 1) as f64 * *v as f64)
        .sum()
}
