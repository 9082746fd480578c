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
use pml_distributed::{
    DataParallel, DistributedLossWrapper, GlobalConfig, PeerGroup, PeerGroupConfig,
};
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

/// The parameters after training `net` on one device with the whole global batch per step;
/// asserts that training moved them (else a comparison with them would prove nothing).
fn single_device(net: Net<Ad>, world: usize, mine: bool) -> Vec<f32> {
    let start = params(&net);
    let mut single = DataParallel::new(
        trainer(net, PeerGroup::single(), mine),
        SgdConfig::new().init(),
        PeerGroup::single(),
    )
    .unwrap();
    for step in 0..STEPS {
        single
            .step(batch(step, 0..world * ROWS_PER_PEER, world), LR)
            .unwrap();
    }
    let trained = params(&single.into_trainer().model);
    assert!(
        start
            .iter()
            .zip(&trained)
            .any(|(a, b)| (a - b).abs() > 1e-3),
        "the single-device run did not move the model: the test would prove nothing"
    );
    trained
}

fn check(world: usize, mine: bool) {
    let _turn = turn();
    let net: Net<Ad> = Net {
        fc: LinearConfig::new(IN, OUT).init(&Default::default()),
    };
    // Reading the parameters materialises them (burn initialises lazily, and each clone of an
    // uninitialised parameter would draw its own values): every clone below starts from these.
    let _ = params(&net);
    let expected = single_device(net.clone(), world, mine);

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

/// Set in the peer processes of [`two_processes_train_the_model_of_one_device`]:
/// `RANK ORCHESTRATOR_PORT DATA_PORT OUT_FILE`.
const PROCESS_PEER: &str = "PML_DDP_TEST_PEER";

/// The same starting model in every process (the processes share no random state).
fn fixed_net() -> Net<Ad> {
    let device = Default::default();
    let mut net: Net<Ad> = Net {
        fc: LinearConfig::new(IN, OUT).init(&device),
    };
    let data = |len: usize, seed: u64, shape: Vec<usize>| {
        let v: Vec<f32> = values(len, seed).iter().map(|x| x * 0.5).collect();
        TensorData::new(v, shape)
    };
    net.fc.weight = burn::module::Param::from_tensor(Tensor::from_data(
        data(IN * OUT, 7, vec![IN, OUT]),
        &device,
    ));
    net.fc.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
        data(OUT, 8, vec![OUT]),
        &device,
    )));
    net
}

/// A port the system has just handed out as free.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// One peer process: registers with the orchestrator, trains its rows of the global batches
/// with the miner, writes its parameters.
fn process_peer(spec: &str) {
    let parts: Vec<&str> = spec.split(' ').collect();
    let [rank, orchestrator, port, out] = parts[..] else {
        panic!("{PROCESS_PEER}: expected 4 fields, got {spec:?}");
    };
    let (rank, port): (usize, u16) = (rank.parse().unwrap(), port.parse().unwrap());
    let world = 2;
    let config = PeerGroupConfig::process(
        rank,
        GlobalConfig {
            num_nodes: world as u32,
            orchestrator: format!("ws://127.0.0.1:{orchestrator}"),
            node_address: format!("ws://127.0.0.1:{port}"),
            data_service_port: port,
        },
    )
    .with_timeout(Duration::from_secs(60));
    let group = PeerGroup::register::<burn::backend::NdArray>(config, &Default::default()).unwrap();
    let mut dp = DataParallel::new(
        trainer(fixed_net(), group.clone(), true),
        SgdConfig::new().init(),
        group.clone(),
    )
    .unwrap();
    for step in 0..STEPS {
        let rows = rank * ROWS_PER_PEER..(rank + 1) * ROWS_PER_PEER;
        dp.step(batch(step, rows, world), LR).unwrap();
    }
    group.finish().unwrap();
    let text: Vec<String> = params(&dp.into_trainer().model)
        .iter()
        .map(f32::to_string)
        .collect();
    std::fs::write(out, text.join(" ")).unwrap();
}

/// Two peers in two processes on localhost, through burn-collective's global orchestrator (run
/// here on a thread; the peers are this test binary run again with `PROCESS_PEER` set), end
/// with the model of one device trained on the same global batches.
#[test]
fn two_processes_train_the_model_of_one_device() {
    if let Ok(spec) = std::env::var(PROCESS_PEER) {
        process_peer(&spec);
        return;
    }
    let world = 2;
    let expected = single_device(fixed_net(), world, true);

    let orchestrator = free_port();
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("a tokio runtime")
            .block_on(pml_distributed::start_global_orchestrator(orchestrator));
    });
    let dir = std::env::temp_dir().join(format!("pml-ddp-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut peers: Vec<_> = (0..world)
        .map(|rank| {
            let log = std::fs::File::create(dir.join(format!("peer-{rank}.log"))).unwrap();
            let spec = format!(
                "{rank} {orchestrator} {} {}",
                free_port(),
                dir.join(format!("peer-{rank}.params")).display()
            );
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "two_processes_train_the_model_of_one_device",
                    "--nocapture",
                ])
                .env(PROCESS_PEER, spec)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap()
        })
        .collect();
    let logs = || {
        (0..world)
            .map(|r| std::fs::read_to_string(dir.join(format!("peer-{r}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    // Each collective operation times out after 60 s; the deadline only guards the test.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    for (rank, peer) in peers.iter_mut().enumerate() {
        let status = loop {
            if let Some(status) = peer.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = peer.kill();
                panic!("peer process {rank} did not finish in 300 s:\n{}", logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "peer process {rank}: {status}\n{}",
            logs()
        );
    }
    for rank in 0..world {
        let text = std::fs::read_to_string(dir.join(format!("peer-{rank}.params"))).unwrap();
        let got: Vec<f32> = text.split(' ').map(|v| v.parse().unwrap()).collect();
        assert_close(
            &format!("parameters of peer process {rank}"),
            &got,
            &expected,
            1e-4,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
