//! Each trainer trains a few epochs on small synthetic data and must improve MAP@R.

use std::sync::Arc;

use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::module::{AutodiffModule, Module};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, SgdConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use burn::train::InferenceStep;
use pml_core::tensor::int_tensor;
use pml_core::{LossInput, LossTerm, LossTerms, MetricLoss};
use pml_eval::AccuracyInput;
use pml_losses::{LossConfig, ProxyAnchorLossConfig, TripletMarginLossConfig};
use pml_miners::MinerConfig;

use super::*;
use crate::datasets::{VectorBatch, VectorBatcher, VectorDataset};

type TB = Autodiff<NdArray>;
type I = NdArray;

const DIM: usize = 8;
const CLASSES: usize = 4;

/// Classes told apart by 2 signal columns; 6 noise columns as loud hide them.
fn synthetic(n: usize, seed: u64) -> VectorDataset {
    let rng = pml_core::rng::SeededRng::new(seed);
    let normal = || {
        let (u1, u2) = (rng.uniform().max(1e-12), rng.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let mut features = Vec::with_capacity(n * DIM);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % CLASSES;
        labels.push(class as i64);
        let angle = class as f64 * std::f64::consts::FRAC_PI_2;
        features.push((angle.cos() + 0.15 * normal()) as f32);
        features.push((angle.sin() + 0.15 * normal()) as f32);
        for _ in 2..DIM {
            features.push((1.5 * normal()) as f32);
        }
    }
    VectorDataset::new(features, labels, DIM)
}

#[derive(Module, Debug)]
struct Net<B: Backend> {
    fc1: Linear<B>,
    fc2: Linear<B>,
    relu: Relu,
}

impl<B: Backend> Net<B> {
    fn new(out: usize, device: &B::Device) -> Self {
        Self {
            fc1: LinearConfig::new(DIM, 32).init(device),
            fc2: LinearConfig::new(32, out).init(device),
            relu: Relu::new(),
        }
    }
}

impl<B: Backend> Embedder<B> for Net<B> {
    type Batch = VectorBatch<B>;

    fn embed(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc2.forward(self.relu.forward(self.fc1.forward(x)))
    }
}

type TrainLoader = Arc<dyn DataLoader<TB, VectorBatch<TB>>>;
type ValidLoader = Arc<dyn DataLoader<I, VectorBatch<I>>>;

fn loaders(seed: u64) -> (TrainLoader, ValidLoader, VectorDataset) {
    TB::seed(&Default::default(), seed);
    let train = synthetic(512, seed);
    let valid = synthetic(200, seed + 100);
    let train_loader = DataLoaderBuilder::new(VectorBatcher)
        .batch_size(32)
        .shuffle(seed)
        .build(train);
    let valid_loader = DataLoaderBuilder::new(VectorBatcher)
        .batch_size(64)
        .build(valid.clone());
    (train_loader, valid_loader, valid)
}

fn config(epochs: usize) -> FitConfig {
    FitConfig::new()
        .with_num_epochs(epochs)
        .with_progress(ProgressKind::Silent)
        .with_print_epochs(false)
}

/// MAP@R of an inference model on a dataset, through its validation step.
fn map_at_r<M: InferenceStep<Input = VectorBatch<I>, Output = EmbeddingOutput<I>>>(
    model: &M,
    data: &VectorDataset,
) -> f64 {
    let out = model.step(data.to_tensors(&Default::default()));
    let acc = default_accuracy_config()
        .init()
        .get_accuracy(AccuracyInput::new(out.embeddings, data.labels().to_vec()))
        .unwrap();
    acc["mean_average_precision_at_r"].as_scalar().unwrap()
}

fn triplet() -> pml_losses::TripletMarginLoss {
    TripletMarginLossConfig::new().with_margin(0.1).init()
}

fn ms_miner() -> pml_miners::AnyMiner {
    serde_json::from_str::<MinerConfig>(
        r#"{"name": "MultiSimilarityMiner", "params": {"epsilon": 0.1}}"#,
    )
    .unwrap()
    .init()
}

#[test]
fn metric_loss_only_improves_keeps_the_best_checkpoint_and_resumes() {
    let device = Default::default();
    let (train, valid, valid_data) = loaders(1);
    let trainer = MetricLossOnly::new(Net::<TB>::new(8, &device), triplet()).with_miner(ms_miner());
    let before = map_at_r(&trainer.valid(), &valid_data);
    let dir = tempfile::tempdir().unwrap();
    let out = fit(
        trainer.clone(),
        AdamConfig::new().init(),
        1e-2,
        train.clone(),
        valid.clone(),
        dir.path(),
        &config(3),
    )
    .unwrap();
    let after = map_at_r(&out.model, &valid_data);
    assert!(after > before + 0.1, "MAP@R {before} -> {after}");
    let valid_epochs: Vec<_> = out.history.iter().filter(|r| r.split == "valid").collect();
    assert_eq!(valid_epochs.len(), 3);
    assert_eq!(valid_epochs[2].values["mean_average_precision_at_r"], after);
    assert!(
        out.history
            .iter()
            .any(|r| r.split == "train" && r.values["Loss"].is_finite())
    );
    let (best_epoch, best_value, best_model) = out.best.expect("a best epoch");
    assert!(
        valid_epochs
            .iter()
            .all(|r| r.values["mean_average_precision_at_r"] <= best_value)
    );
    let reloaded = map_at_r(&best_model, &valid_data);
    assert!(
        (reloaded - best_value).abs() < 1e-4,
        "{reloaded} vs {best_value}"
    );
    assert!(
        dir.path()
            .join(format!("checkpoint/model-{best_epoch}.mpk"))
            .exists()
    );
    assert_eq!(out.skipped_batches, 0);
    assert!(out.stopped.is_none());

    // Resume from the last epoch's checkpoint for one more epoch.
    let resumed = fit(
        trainer,
        AdamConfig::new().init(),
        1e-2,
        train,
        valid,
        dir.path(),
        &config(4).with_resume_from(Some(3)),
    )
    .unwrap();
    let resumed_epochs: Vec<_> = resumed
        .history
        .iter()
        .filter(|r| r.split == "valid")
        .map(|r| r.epoch)
        .collect();
    assert_eq!(resumed_epochs, vec![4]);
    assert!(map_at_r(&resumed.model, &valid_data) > before + 0.1);
}

#[test]
fn loss_optimizer_trains_proxies_with_their_own_rate() {
    let device = Default::default();
    let (train, valid, valid_data) = loaders(2);
    let loss = ProxyAnchorLossConfig::new(CLASSES, 8).init::<TB>(&device);
    let proxies_before = loss.proxies.val().into_data();
    let trainer = MetricLossOnly::new(Net::<TB>::new(8, &device), loss);
    let before = map_at_r(&trainer.valid(), &valid_data);
    let dir = tempfile::tempdir().unwrap();
    let optim = LossOptimizer::new(AdamConfig::new().init(), SgdConfig::new().init(), 100.0);
    let out = fit(trainer, optim, 1e-2, train, valid, dir.path(), &config(3)).unwrap();
    let after = map_at_r(&out.model, &valid_data);
    assert!(after > before + 0.1, "MAP@R {before} -> {after}");
    assert_ne!(out.model.loss.proxies.val().into_data(), proxies_before);
}

#[test]
fn train_with_classifier_improves() {
    let device = Default::default();
    let (train, valid, valid_data) = loaders(3);
    let trainer = TrainWithClassifier::new(
        Net::<TB>::new(8, &device),
        LinearConfig::new(8, CLASSES).init::<TB>(&device),
        triplet(),
    )
    .with_miner(ms_miner())
    .with_loss_weights(1.0, 0.5);
    let before = map_at_r(&trainer.valid(), &valid_data);
    let dir = tempfile::tempdir().unwrap();
    let out = fit(
        trainer,
        AdamConfig::new().init(),
        1e-2,
        train,
        valid,
        dir.path(),
        &config(3),
    )
    .unwrap();
    let after = map_at_r(&out.model, &valid_data);
    assert!(after > before + 0.1, "MAP@R {before} -> {after}");
}

#[test]
fn cascaded_embeddings_improves() {
    let device = Default::default();
    let (train, valid, valid_data) = loaders(4);
    let hdc = serde_json::from_str::<MinerConfig>(
        r#"{"name": "HDCMiner", "params": {"filter_percentage": 0.5}}"#,
    )
    .unwrap()
    .init();
    let trainer = CascadedEmbeddings::new(
        Net::<TB>::new(8, &device),
        vec![4, 4],
        vec![triplet(), triplet()],
    )
    .with_miner(0, ms_miner())
    .with_miner(1, hdc);
    let before = map_at_r(&trainer.valid(), &valid_data);
    let dir = tempfile::tempdir().unwrap();
    let out = fit(
        trainer,
        AdamConfig::new().init(),
        1e-2,
        train,
        valid,
        dir.path(),
        &config(3),
    )
    .unwrap();
    let after = map_at_r(&out.model, &valid_data);
    assert!(after > before + 0.1, "MAP@R {before} -> {after}");
}

/// Pairs of the synthetic data: each item with the next item of its class.
#[derive(Clone, Debug)]
struct PairItem {
    anchor: Vec<f32>,
    posneg: Vec<f32>,
    label: i64,
}

#[derive(Clone, Debug)]
struct PairBatcher;

impl<B: Backend> Batcher<B, PairItem, TwoStreamBatch<B, Tensor<B, 2>>> for PairBatcher {
    fn batch(&self, items: Vec<PairItem>, device: &B::Device) -> TwoStreamBatch<B, Tensor<B, 2>> {
        let n = items.len();
        let rows = |f: &dyn Fn(&PairItem) -> &Vec<f32>| {
            let data: Vec<f32> = items.iter().flat_map(|i| f(i).clone()).collect();
            Tensor::from_data(TensorData::new(data, [n, DIM]), device)
        };
        TwoStreamBatch {
            anchors: rows(&|i| &i.anchor),
            posnegs: rows(&|i| &i.posneg),
            labels: int_tensor(&items.iter().map(|i| i.label).collect::<Vec<_>>(), device),
        }
    }
}

#[test]
fn two_stream_metric_loss_improves() {
    let device = Default::default();
    let (_, valid, valid_data) = loaders(5);
    let data = synthetic(512, 5);
    let items: Vec<PairItem> = (0..data.len())
        .map(|i| {
            let j = (i + CLASSES) % data.len();
            PairItem {
                anchor: data.row(i).to_vec(),
                posneg: data.row(j).to_vec(),
                label: data.labels()[i],
            }
        })
        .collect();
    let train: Arc<dyn DataLoader<TB, TwoStreamBatch<TB, Tensor<TB, 2>>>> =
        DataLoaderBuilder::new(PairBatcher)
            .batch_size(32)
            .shuffle(5)
            .build(InMemDataset::new(items));
    let trainer = TwoStreamMetricLoss::new(Net::<TB>::new(8, &device), triplet());
    let before = map_at_r(&trainer.valid(), &valid_data);
    let dir = tempfile::tempdir().unwrap();
    let out = fit(
        trainer,
        AdamConfig::new().init(),
        1e-2,
        train,
        valid,
        dir.path(),
        &config(3),
    )
    .unwrap();
    let after = map_at_r(&out.model, &valid_data);
    assert!(after > before + 0.1, "MAP@R {before} -> {after}");
}

/// Two views: the noise columns redrawn, the signal columns kept.
#[derive(Clone, Debug)]
struct ResampleNoise;

impl<B: Backend> Augmentation<B, Tensor<B, 2>> for ResampleNoise {
    fn num_views(&self) -> usize {
        2
    }

    fn view(&self, x: Tensor<B, 2>, _view: usize) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        let noise = Tensor::random([n, d - 2], Distribution::Normal(0.0, 1.5), &x.device());
        Tensor::cat(vec![x.narrow(1, 0, 2), noise], 1)
    }
}

#[test]
fn unsupervised_embeddings_using_augmentations_improves() {
    let device = Default::default();
    let (train, valid, valid_data) = loaders(6);
    let loss = LossConfig::NtXent(pml_losses::NTXentLossConfig::new().with_temperature(0.1))
        .init::<TB>(&device);
    let trainer = UnsupervisedEmbeddingsUsingAugmentations::new(
        Net::<TB>::new(8, &device),
        loss,
        ResampleNoise,
    );
    let before = map_at_r(&trainer.valid(), &valid_data);
    let dir = tempfile::tempdir().unwrap();
    let out = fit(
        trainer,
        AdamConfig::new().init(),
        1e-2,
        train,
        valid,
        dir.path(),
        &config(3),
    )
    .unwrap();
    let after = map_at_r(&out.model, &valid_data);
    assert!(after > before + 0.1, "MAP@R {before} -> {after}");
}

#[test]
fn deep_adversarial_metric_learning_runs_its_phases_and_improves() {
    let device = Default::default();
    let (train, valid, valid_data) = loaders(7);
    let iterations = 512 / 32;
    let trainer = DeepAdversarialMetricLearningConfig::new(iterations)
        .with_metric_alone_epochs(1)
        .with_g_alone_epochs(1)
        .with_g_triplets_per_anchor(4)
        .try_init(
            Net::<TB>::new(16, &device),
            LinearConfig::new(16, 8).init::<TB>(&device),
            LinearConfig::new(48, 16).init::<TB>(&device),
            triplet(),
            triplet(),
        )
        .unwrap()
        .with_miner(ms_miner());
    let generator = trainer.generator.weight.val().into_data();
    let before = map_at_r(&trainer.valid(), &valid_data);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1);
    let out = fit(
        trainer.clone(),
        AdamConfig::new().init(),
        1e-2,
        train.clone(),
        valid.clone(),
        dir.path(),
        &cfg,
    )
    .unwrap();
    // Metric alone: the generator did not move.
    assert_eq!(out.model.generator.weight.val().into_data(), generator);
    let out = fit(
        trainer,
        AdamConfig::new().init(),
        1e-2,
        train,
        valid,
        dir.path(),
        &config(3),
    )
    .unwrap();
    assert_ne!(out.model.generator.weight.val().into_data(), generator);
    let after = map_at_r(&out.model, &valid_data);
    assert!(after > before + 0.1, "MAP@R {before} -> {after}");
}

/// A loss that is always NaN.
#[derive(Module, Debug, Clone)]
struct NanLoss {
    value: f64,
}

impl<B: Backend> MetricLoss<B> for NanLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        let loss = input.embeddings.clone().sum().mul_scalar(self.value);
        LossTerms::new().with(LossTerm::already_reduced("loss", loss))
    }

    fn reduce(&self, terms: LossTerms<B>, _input: &LossInput<B>) -> Tensor<B, 1> {
        terms
            .terms
            .into_iter()
            .filter_map(|t| t.losses)
            .reduce(|a, b| a + b)
            .expect("one term")
    }
}

#[test]
fn non_finite_losses_are_skipped_or_stop_the_run() {
    let device = Default::default();
    let (train, valid, _) = loaders(8);
    let net = Net::<TB>::new(8, &device);
    let weights = net.fc1.weight.val().into_data();
    let nan = NanLoss { value: f64::NAN };

    let skip = MetricLossOnly::new(net.clone(), nan.clone());
    let dir = tempfile::tempdir().unwrap();
    let out = fit(
        skip,
        AdamConfig::new().init(),
        1e-2,
        train.clone(),
        valid.clone(),
        dir.path(),
        &config(2),
    )
    .unwrap();
    assert_eq!(out.skipped_batches, 2 * 512 / 32);
    assert!(out.stopped.is_none());
    assert_eq!(out.model.model.fc1.weight.val().into_data(), weights);
    assert!(out.history.iter().filter(|r| r.split == "valid").count() == 2);

    let stop = MetricLossOnly::new(net, nan).with_non_finite(NonFinitePolicy::Stop);
    let dir = tempfile::tempdir().unwrap();
    let out = fit(
        stop,
        AdamConfig::new().init(),
        1e-2,
        train,
        valid,
        dir.path(),
        &config(2),
    )
    .unwrap();
    assert_eq!(out.skipped_batches, 1);
    assert!(out.stopped.unwrap().contains("NaN"));
    assert_eq!(out.model.model.fc1.weight.val().into_data(), weights);
}

#[test]
fn a_checkpoint_metric_that_is_not_computed_is_an_error() {
    let device = Default::default();
    let (train, valid, _) = loaders(9);
    let trainer = MetricLossOnly::new(Net::<TB>::new(8, &device), triplet());
    let dir = tempfile::tempdir().unwrap();
    let err = fit(
        trainer,
        AdamConfig::new().init(),
        1e-2,
        train,
        valid,
        dir.path(),
        &config(1).with_checkpoint_metric("NMI".into()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("checkpoint_metric"), "{err}");
}

/// A triplet loss that, at its `block_at`-th call (from 0), writes the file `marker` and
/// blocks forever: the process is alive in the middle of a training step when the kill test
/// kills it.
#[derive(Module, Debug, Clone)]
struct BlockAt {
    inner: pml_losses::TripletMarginLoss,
    #[module(skip)]
    calls: Arc<std::sync::atomic::AtomicUsize>,
    block_at: usize,
    #[module(skip)]
    marker: std::path::PathBuf,
}

impl BlockAt {
    fn new(block_at: usize, marker: std::path::PathBuf) -> Self {
        Self {
            inner: triplet(),
            calls: Arc::default(),
            block_at,
            marker,
        }
    }

    fn never() -> Self {
        Self::new(usize::MAX, std::path::PathBuf::new())
    }
}

impl<B: Backend> MetricLoss<B> for BlockAt {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        let call = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if call == self.block_at {
            std::fs::write(&self.marker, b"blocked").expect("the marker file is written");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        self.inner.forward_terms(input)
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.inner.reduce(terms, input)
    }
}

/// Every weight of the network, flattened.
fn weights<B: Backend>(net: &Net<B>) -> Vec<f32> {
    [
        net.fc1.weight.val().into_data(),
        net.fc2.weight.val().into_data(),
    ]
    .into_iter()
    .flat_map(|d| d.iter::<f32>().collect::<Vec<_>>())
    .collect()
}

/// Set in the child process of the kill test: the folder it trains in.
const KILL_CHILD: &str = "PML_TRAIN_KILL_TEST_CHILD";

/// A training process killed (SIGKILL, mid-step) and resumed from its last checkpoint ends with
/// the model of an uninterrupted run: the test runs itself as a child process (`KILL_CHILD`
/// set), which trains until the 6th step of epoch 3 and blocks there; the parent kills it, then
/// resumes from epoch 2's checkpoint in its folder.
#[test]
fn a_run_killed_mid_epoch_and_resumed_ends_with_the_uninterrupted_model() {
    use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
    let device = Default::default();
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let steps_per_epoch = 512 / 32;
    let run = |net: Net<TB>, loss: BlockAt, resume_from: Option<usize>, dir: &std::path::Path| {
        // Fresh loaders with the same seed: a resumed process rebuilds its loaders too.
        let (train, valid, _) = loaders(21);
        let trainer = MetricLossOnly::new(net, loss);
        fit(
            trainer,
            AdamConfig::new().init(),
            1e-2,
            train,
            valid,
            dir,
            &config(3).with_resume_from(resume_from),
        )
        .unwrap()
    };
    if let Some(dir) = std::env::var_os(KILL_CHILD) {
        let dir = std::path::PathBuf::from(dir);
        let net = Net::<TB>::new(8, &device)
            .load_file(dir.join("initial"), &recorder, &device)
            .expect("the parent saved the initial model");
        let block = BlockAt::new(2 * steps_per_epoch + 5, dir.join("blocked"));
        run(net, block, None, &dir);
        panic!("the child trained to the end instead of blocking");
    }

    TB::seed(&device, 21);
    // Burn initialises parameters lazily, and each clone of an uninitialised parameter draws
    // its own values: load the record of one draw so that every clone (and the saved copy)
    // holds the same values.
    let net = Net::<TB>::new(8, &device);
    let net = net.clone().load_record(net.into_record());
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = run(net.clone(), BlockAt::never(), None, whole_dir.path());
    assert!(whole.stopped.is_none());

    // The child starts from the same weights, loaded from a file.
    let dir = tempfile::tempdir().unwrap();
    net.clone()
        .save_file(dir.path().join("initial"), &recorder)
        .unwrap();
    let log = std::fs::File::create(dir.path().join("child.log")).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "trainers::tests::a_run_killed_mid_epoch_and_resumed_ends_with_the_uninterrupted_model",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_CHILD, dir.path())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let child_log = || std::fs::read_to_string(dir.path().join("child.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !dir.path().join("blocked").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the child exited ({status}) before it was killed:\n{}",
                child_log()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child did not reach epoch 3 in 600 s:\n{}",
            child_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was not killed: {status}");
    let checkpoint = |e: usize| dir.path().join(format!("checkpoint/model-{e}.mpk"));
    assert!(
        checkpoint(2).exists() && !checkpoint(3).exists(),
        "killed in epoch 3, the last checkpoint should be epoch 2's"
    );

    let resumed = run(net, BlockAt::never(), Some(2), dir.path());
    assert!(resumed.stopped.is_none());
    // The same operations on the same values in the same order: equal up to the rounding
    // of reloading f32 weights and Adam moments from the checkpoint (bit-exact in practice;
    // 1e-6 leaves room for a recorder that rounds through another float format).
    let (a, b) = (weights(&resumed.model.model), weights(&whole.model.model));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        diff <= 1e-6,
        "resumed and uninterrupted models differ by {diff}"
    );
}
