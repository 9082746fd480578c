//! Metric learning on a labelled CSV file: the 8x8 handwritten digits shipped with pml-train
//! (or any CSV with a `label` column), read with pml-train's CSV reader.
//!
//! `cargo run --release -p pml-examples --example digits [-- --csv FILE --scale 0.0625]`

use std::path::PathBuf;
use std::sync::Arc;

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
use pml_train::datasets::{CsvDatasetConfig, VectorBatch, VectorBatcher, digits};
use pml_train::samplers::{MPerClassSamplerConfig, SamplerDataLoader};
use pml_train::trainers::{FitConfig, MetricLossOnly, default_accuracy_config, fit};

/// Trains an MLP `dim-128-32` on the first `--train` rows of the CSV and retrieves among the
/// others (queries = reference).
#[derive(Parser, Debug)]
struct Args {
    /// The backend: ndarray, wgpu or cuda, among those compiled in (cargo features of the same
    /// names). Default: the one the PML_BACKEND environment variable names, else ndarray.
    #[arg(long, value_name = "NAME")]
    backend: Option<BackendKind>,
    /// Training epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// A labelled CSV file (header line, a `label` column, numeric features) instead of the
    /// embedded digits.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Factor applied to the CSV's features.
    #[arg(long, default_value_t = 1.0)]
    scale: f32,
    /// Rows that train; the rest are the retrieval set.
    #[arg(long, default_value_t = 1200)]
    train: usize,
    /// The loss, as a PML spec.
    #[arg(
        long,
        default_value = r#"{"name": "ContrastiveLoss", "params": {"pos_margin": 0.0, "neg_margin": 1.0}}"#
    )]
    loss: String,
    /// The miner, as a PML spec, or "none".
    #[arg(
        long,
        default_value = r#"{"name": "PairMarginMiner", "params": {"pos_margin": 0.2, "neg_margin": 0.8}}"#
    )]
    miner: String,
    /// Where to write metrics.csv, the charts and burn-train's logs.
    #[arg(long, default_value = "target/pml-examples/digits")]
    out: PathBuf,
}

struct Digits {
    args: Args,
    loss: LossConfig,
    miner: Option<MinerConfig>,
}

impl Job for Digits {
    type Output = Result<(), String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<(), String> {
        let Digits { args, loss, miner } = self;
        B::seed(&device, 0);
        let data = match &args.csv {
            Some(path) => CsvDatasetConfig::new()
                .with_scale(args.scale)
                .load(path)
                .map_err(|e| e.to_string())?,
            None => digits(),
        };
        if args.train == 0 || args.train >= data.len() {
            return Err(format!(
                "--train must be in 1..{}, got {}",
                data.len(),
                args.train
            ));
        }
        let (train, test) = (
            data.subset(0..args.train),
            data.subset(args.train..data.len()),
        );
        let acc = default_accuracy_config();
        let model = Mlp::<B>::new(&[data.dim(), 128, 32], &device);
        let before = accuracies(
            &acc,
            embed_all(&model.valid(), &test, &device),
            test.labels(),
        )
        .map_err(|e| e.to_string())?;
        println!("before training: {}", rounded(&before));

        let sampler = MPerClassSamplerConfig::new(8)
            .with_batch_size(Some(80))
            .with_length_before_new_iter(train.len())
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
        let outcome = fit(
            trainer,
            AdamConfig::new().init(),
            1e-3,
            train_loader,
            valid_loader,
            args.out.join("training"),
            &FitConfig::new()
                .with_num_epochs(args.epochs)
                .with_accuracy(acc.clone()),
        )
        .map_err(|e| e.to_string())?;
        let embeddings = embed_all(&outcome.model.model, &test, &device);
        let after =
            accuracies(&acc, embeddings.clone(), test.labels()).map_err(|e| e.to_string())?;
        println!("after training:  {}", rounded(&after));
        if let Some((epoch, value, _)) = &outcome.best {
            println!("best epoch by mean_average_precision_at_r: {epoch} ({value:.4})");
        }
        let (header, rows) = epoch_table(&before, &outcome.history);
        let flat: Vec<f32> = embeddings
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| format!("{e:?}"))?;
        for path in write_outputs(&args.out, &header, &rows, &flat, 32, test.labels())? {
            println!("wrote {}", path.display());
        }
        Ok(())
    }
}

fn parse_specs(args: &Args) -> Result<(LossConfig, Option<MinerConfig>), String> {
    let loss = serde_json::from_str(&args.loss).map_err(|e| format!("--loss: {e}"))?;
    let miner = match args.miner.trim() {
        "none" | "" => None,
        spec => Some(serde_json::from_str(spec).map_err(|e| format!("--miner: {e}"))?),
    };
    Ok((loss, miner))
}

fn main() {
    let args = Args::parse();
    let result = parse_specs(&args).and_then(|(loss, miner)| {
        dispatch(args.backend, Digits { args, loss, miner }).and_then(|r| r)
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
