//! Two peers training data-parallel end with the model of one device trained on the same
//! global batches.

mod common;

use std::sync::Arc;
use std::time::Duration;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::SgdConfig;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use common::{Ad, assert_close, labels, run_peers, turn, values};
use pml_distributed::{DataParallel, DistributedLossWrapper, PeerGroup};
use pml_losses::{MultiSimilarityLoss, MultiSimilarityLossConfig};
use pml_miners::{AnyMiner, MultiSimilarityMinerConfig};
use pml_train::datasets::VectorBatch;
use pml_train::trainers::{Embedder, MetricLossOnly};

const IN: usize = 8;
const OUT: usize = 4;
const ROWS_PER_PEER: usize = 8;
const STEPS: usize = 4;
const LR: f64 = 0.5;

#[derive(Module, Debug)]
struct Net<B: Backend> {
    fc: Linear<B>,
}

impl<B: Backend> Embedder<B> for Net<B> {
    type Batch = VectorBatch<B>;
    fn embed(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc.forward(x)
    }
}

type Trainer = MetricLossOnly<Ad, Net<Ad>, DistributedLossWrapper<Ad, MultiSimilarityLoss>>;

fn trainer(net: Net<Ad>, group: PeerGroup, mine: bool) -> Trainer {
    let mut loss =
        DistributedLossWrapper::new(MultiSimilarityLossConfig::new().init(), false, group).unwrap();
    if mine {
        loss = loss.with_miner(AnyMiner::MultiSimilarity(
            MultiSimilarityMinerConfig::new().with_epsilon(0.5).init(),
        ));
    }
    MetricLossOnly::new(net, loss)
}

/// Rows `rows` of step `step`'s global batch.
fn batch(step: usize, rows: std::ops::Range<usize>, world: usize) -> VectorBatch<Ad> {
    let n = world * ROWS_PER_PEER;
    let x = values(n * IN, 100 + step as u64);
    let y = labels(n, 3, 200 + step as u64);
    let device = Default::default();
    VectorBatch {
        images: Tensor::from_data(
            TensorData::new(x[rows.start * IN..rows.end * IN].to_vec(), [rows.len(), IN]),
            &device,
        ),
        labels: Tensor::<Ad, 1, Int>::from_data(
            TensorData::new(y[rows.clone()].to_vec(), [rows.len()]),
            &device,
        ),
    }
}

fn params(net: &Net<Ad>) -> Vec<f32> {
    let mut out: Vec<f32> = net
        .fc
        .weight
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap();
    if let Some(b) = &net.fc.bias {
        out.extend(
            b.val()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap(),
        );
    }
    out
}

fn check(world: usize, mine: bool) {
    let _turn = turn();
    let net: Net<Ad> = Net {
        fc: LinearConfig::new(IN, OUT).init(&Default::default()),
    };
    let start = params(&net);

    // One device, the whole global batch per step.
    let mut single = DataParallel::new(
        trainer(net.clone(), PeerGroup::single(), mine),
        SgdConfig::new().init(),
        PeerGroup::single(),
    )
    .unwrap();
    for step in 0..STEPS {
        single
            .step(batch(step, 0..world * ROWS_PER_PEER, world), LR)
            .unwrap();
    }
    let expected = params(&single.into_trainer().model);
    assert!(
        start
            .iter()
            .zip(&expected)
            .any(|(a, b)| (a - b).abs() > 1e-3),
        "the single-device run did not move the model: the test would prove nothing"
    );

    // `world` peers, each with its slice of the same batches.
    let net = Arc::new(net);
    let replicas = run_peers(world, Duration::from_secs(60), move |group| {
        let rank = group.rank();
        let mut dp = DataParallel::new(
            trainer((*net).clone(), group.clone(), mine),
            SgdConfig::new().init(),
            group,
        )
        .unwrap();
        for step in 0..STEPS {
            let rows = rank * ROWS_PER_PEER..(rank + 1) * ROWS_PER_PEER;
            dp.step(batch(step, rows, world), LR).unwrap();
        }
        params(&dp.into_trainer().model)
    });
    for (rank, got) in replicas.iter().enumerate() {
        assert_close(
            &format!("world={world} mine={mine}: parameters of peer {rank}"),
            got,
            &expected,
            1e-4,
        );
    }
}

#[test]
fn two_peers_train_the_model_of_one_device() {
    check(2, false);
}

#[test]
fn two_peers_with_a_miner_train_the_model_of_one_device() {
    check(2, true);
}

#[test]
fn peers_that_start_from_different_models_are_synchronised() {
    let _turn = turn();
    let replicas = run_peers(2, Duration::from_secs(60), |group| {
        // Each thread initialises its own random model, as separate processes would.
        let net: Net<Ad> = Net {
            fc: LinearConfig::new(IN, OUT).init(&Default::default()),
        };
        let dp = DataParallel::new(
            trainer(net, group.clone(), false),
            SgdConfig::new().init(),
            group,
        )
        .unwrap();
        params(&dp.trainer().model)
    });
    assert_eq!(replicas[0], replicas[1]);
}
