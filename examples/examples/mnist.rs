//! The quick start: MNIST retrieval with a triplet loss and a multi-similarity miner, the task
//! of `mnist_reference.py` (PML), trained with burn-train through pml-train's `fit`.
//!
//! `cargo run --release -p pml-examples --example mnist [-- --epochs 5 --out DIR ...]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::module::AutodiffModule;
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use clap::Parser;
use pml_examples::backend::{BackendKind, Job, dispatch};
use pml_examples::report::{epoch_table, rounded, write_outputs};
use pml_examples::{Mlp, accuracies, embed_all};
use pml_losses::LossConfig;
use pml_miners::MinerConfig;
use pml_train::datasets::{VectorBatch, VectorBatcher, load_mnist, mnist_test_set};
use pml_train::samplers::{MPerClassSamplerConfig, SamplerDataLoader};
use pml_train::trainers::{FitConfig, MetricLossOnly, default_accuracy_config, fit};
use serde_json::json;

/// MNIST retrieval: images 0..6999 of the MNIST test set train an MLP 784-256-128-64, images
/// 7000..9999 are the retrieval set (queries = reference).
#[derive(Parser, Debug)]
struct Args {
    /// The backend: ndarray, wgpu or cuda, among those compiled in (cargo features of the same
    /// names). Default: the one the PML_BACKEND environment variable names, else ndarray.
    #[arg(long, value_name = "NAME")]
    backend: Option<BackendKind>,
    /// Training epochs (passes of 7000 sampled images).
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// The loss, as a PML spec.
    #[arg(
        long,
        default_value = r#"{"name": "TripletMarginLoss", "params": {"margin": 0.1}}"#
    )]
    loss: String,
    /// The miner, as a PML spec, or "none".
    #[arg(
        long,
        default_value = r#"{"name": "MultiSimilarityMiner", "params": {"epsilon": 0.1}}"#
    )]
    miner: String,
    /// Where to write metrics.csv, the PNG charts and burn-train's logs and checkpoints.
    #[arg(long, default_value = "target/pml-examples/mnist")]
    out: PathBuf,
    /// A directory with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz instead of
    /// the embedded copy.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the weights and the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

struct Mnist {
    args: Args,
    loss: LossConfig,
    miner: Option<MinerConfig>,
}

impl Job for Mnist {
    type Output = Result<(), String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<(), String> {
        let Mnist { args, loss, miner } = self;
        B::seed(&device, args.seed);
        let mnist = match &args.data {
            Some(dir) => load_mnist(
                dir.join("t10k-images-idx3-ubyte.gz"),
                dir.join("t10k-labels-idx1-ubyte.gz"),
            )
            .map_err(|e| e.to_string())?,
            None => mnist_test_set(),
        };
        let (train, test) = (mnist.subset(0..7000), mnist.subset(7000..10_000));
        let acc = default_accuracy_config();
        let model = Mlp::<B>::new(&[784, 256, 128, 64], &device);
        let inner = model.valid();
        let before = accuracies(&acc, embed_all(&inner, &test, &device), test.labels())
            .map_err(|e| e.to_string())?;
        println!("before training: {}", rounded(&before));

        let sampler = MPerClassSamplerConfig::new(16)
            .with_batch_size(Some(160))
            .with_length_before_new_iter(train.len())
            .with_seed(args.seed)
            .try_init(train.labels())
            .map_err(|e| e.to_string())?;
        let train_loader: Arc<dyn DataLoader<B, VectorBatch<B>>> = Arc::new(
            SamplerDataLoader::new(sampler, train, VectorBatcher, device.clone()),
        );
        let valid_loader = DataLoaderBuilder::new(VectorBatcher)
            .batch_size(1000)
            .build(test.clone());
        let loss = loss.try_init::<B>(&device).map_err(|e| e.to_string())?;
        let mut trainer = MetricLossOnly::new(model, loss);
        if let Some(miner) = &miner {
            trainer = trainer.with_miner(miner.try_init().map_err(|e| e.to_string())?);
        }
        // PyTorch's Adam: eps 1e-8 (Burn's default is 1e-5).
        let optimizer = AdamConfig::new().with_epsilon(1e-8).init();
        let config = FitConfig::new()
            .with_num_epochs(args.epochs)
            .with_accuracy(acc.clone());
        let start = Instant::now();
        let outcome = fit(
            trainer,
            optimizer,
            1e-3,
            train_loader,
            valid_loader,
            args.out.join("training"),
            &config,
        )
        .map_err(|e| e.to_string())?;
        let train_seconds = start.elapsed().as_secs_f64();

        let embeddings = embed_all(&outcome.model.model, &test, &device);
        let after =
            accuracies(&acc, embeddings.clone(), test.labels()).map_err(|e| e.to_string())?;
        println!("after training:  {}", rounded(&after));
        if let Some(reason) = &outcome.stopped {
            println!("training stopped early: {reason}");
        }
        if outcome.skipped_batches > 0 {
            println!(
                "{} batches with a non-finite loss were skipped",
                outcome.skipped_batches
            );
        }
        let (header, rows) = epoch_table(&before, &outcome.history);
        let data: Vec<f32> = embeddings
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| format!("{e:?}"))?;
        let written = write_outputs(&args.out, &header, &rows, &data, 64, test.labels())?;
        for path in &written {
            println!("wrote {}", path.display());
        }
        println!(
            "burn-train logs and checkpoints: {}",
            args.out.join("training").display()
        );
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Keys in the order of mnist_reference.py's output.
        let field =
            |v: serde_json::Value| v.to_string().replace(",\"", ", \"").replace("\":", "\": ");
        println!(
            "{{\"task\": {}, \"epochs\": {}, \"before\": {}, \"after\": {}, \"train_seconds\": {}, \"threads\": {}}}",
            json!("mnist-test 7000 train / 3000 retrieval"),
            args.epochs,
            field(rounded(&before)),
            field(rounded(&after)),
            (train_seconds * 100.0).round() / 100.0,
            threads
        );
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    let parsed = serde_json::from_str::<LossConfig>(&args.loss)
        .map_err(|e| format!("--loss: {e}"))
        .and_then(|loss| {
            let miner = match args.miner.trim() {
                "none" | "" => None,
                spec => Some(
                    serde_json::from_str::<MinerConfig>(spec)
                        .map_err(|e| format!("--miner: {e}"))?,
                ),
            };
            Ok((loss, miner))
        });
    let result = parsed.and_then(|(loss, miner)| {
        dispatch(args.backend, Mnist { args, loss, miner }).and_then(|r| r)
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
