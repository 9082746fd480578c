//! A user-defined loss from pml-core's traits, trained like any PML loss.
//!
//! `HingePairLoss` is written here from scratch: it implements [`MetricLoss`] (unreduced terms
//! per positive and negative pair, then a reducer), derives Burn's `Module`, and so plugs into
//! pml-train's trainers, miners and `fit` exactly like the ported losses.
//!
//! `cargo run --release -p pml-examples --example custom_loss [-- --epochs 2]`

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::module::{AutodiffModule, Module};
use burn::optim::AdamConfig;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use clap::Parser;
use pml_core::labels::convert_to_pairs;
use pml_core::math::normalize_rows;
use pml_core::{LossInput, LossTerm, LossTerms, MetricLoss, ReduceContext, Reducer};
use pml_examples::backend::{BackendKind, Job, dispatch};
use pml_examples::report::rounded;
use pml_examples::{Mlp, accuracies, embed_all};
use pml_miners::MinerConfig;
use pml_reducers::AvgNonZeroReducerConfig;
use pml_train::datasets::{VectorBatch, VectorBatcher, mnist_test_set};
use pml_train::samplers::{MPerClassSamplerConfig, SamplerDataLoader};
use pml_train::trainers::{FitConfig, MetricLossOnly, default_accuracy_config, fit};

/// A hinge loss on pairs of L2-normalized embeddings: positive pairs pay
/// `max(0, d - pos_margin)`, negative pairs `max(0, neg_margin - d)`, each term averaged over
/// its non-zero losses (PML's `ContrastiveLoss`, rewritten as a user would).
#[derive(Module, Debug, Clone)]
pub struct HingePairLoss {
    /// Positive pairs closer than this cost nothing.
    pub pos_margin: f64,
    /// Negative pairs farther than this cost nothing.
    pub neg_margin: f64,
}

impl<B: Backend> MetricLoss<B> for HingePairLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        // Mined pairs if the input has an indices tuple, else every pair its labels allow.
        let [a1, p, a2, n] = convert_to_pairs(input);
        let x = normalize_rows(input.embeddings.clone(), 2.0);
        let r = normalize_rows(input.ref_embeddings(), 2.0);
        let dist = |a: Tensor<B, 1, burn::tensor::Int>, b: Tensor<B, 1, burn::tensor::Int>| {
            let diff = x.clone().select(0, a) - r.clone().select(0, b);
            diff.powi_scalar(2)
                .sum_dim(1)
                .clamp_min(1e-12)
                .sqrt()
                .flatten::<1>(0, 1)
        };
        let mut terms = LossTerms::new();
        terms.push(if a1.dims()[0] > 0 {
            let l = dist(a1.clone(), p.clone())
                .sub_scalar(self.pos_margin)
                .clamp_min(0.0);
            LossTerm::pos_pair("pos_loss", l, a1, p)
        } else {
            LossTerm::zero("pos_loss")
        });
        terms.push(if a2.dims()[0] > 0 {
            let l = dist(a2.clone(), n.clone())
                .neg()
                .add_scalar(self.neg_margin)
                .clamp_min(0.0);
            LossTerm::neg_pair("neg_loss", l, a2, n)
        } else {
            LossTerm::zero("neg_loss")
        });
        terms
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        let ctx = ReduceContext::new(input.embeddings.clone(), input.labels.clone());
        AvgNonZeroReducerConfig::new().init().reduce(&terms, &ctx)
    }
}

/// Trains an MLP on MNIST (images 0..6999) with the user-defined loss and a multi-similarity
/// miner, and compares retrieval on images 7000..9999 before and after.
#[derive(Parser, Debug)]
struct Args {
    /// The backend: ndarray, wgpu or cuda, among those compiled in (cargo features of the same
    /// names). Default: the one the PML_BACKEND environment variable names, else ndarray.
    #[arg(long, value_name = "NAME")]
    backend: Option<BackendKind>,
    /// Training epochs.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Where burn-train writes its logs and checkpoints.
    #[arg(long, default_value = "target/pml-examples/custom_loss")]
    out: std::path::PathBuf,
}

struct Train(Args);

impl Job for Train {
    type Output = Result<(), String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<(), String> {
        let args = self.0;
        B::seed(&device, 0);
        let mnist = mnist_test_set();
        let (train, test) = (mnist.subset(0..7000), mnist.subset(7000..10_000));
        let acc = default_accuracy_config();
        let model = Mlp::<B>::new(&[784, 256, 64], &device);
        let before = accuracies(
            &acc,
            embed_all(&model.valid(), &test, &device),
            test.labels(),
        )
        .map_err(|e| e.to_string())?;
        println!("before: {}", rounded(&before));

        let sampler = MPerClassSamplerConfig::new(16)
            .with_batch_size(Some(160))
            .with_length_before_new_iter(train.len())
            .try_init(train.labels())
            .map_err(|e| e.to_string())?;
        let train_loader: Arc<dyn DataLoader<B, VectorBatch<B>>> = Arc::new(
            SamplerDataLoader::new(sampler, train, VectorBatcher, device.clone()),
        );
        let valid_loader = DataLoaderBuilder::new(VectorBatcher)
            .batch_size(1000)
            .build(test.clone());
        let miner = serde_json::from_str::<MinerConfig>(
            r#"{"name": "MultiSimilarityMiner", "params": {"epsilon": 0.1}}"#,
        )
        .map_err(|e| e.to_string())?
        .init();
        let loss = HingePairLoss {
            pos_margin: 0.0,
            neg_margin: 1.0,
        };
        let trainer = MetricLossOnly::new(model, loss).with_miner(miner);
        let outcome = fit(
            trainer,
            AdamConfig::new().init(),
            1e-3,
            train_loader,
            valid_loader,
            &args.out,
            &FitConfig::new().with_num_epochs(args.epochs),
        )
        .map_err(|e| e.to_string())?;
        let after = accuracies(
            &acc,
            embed_all(&outcome.model.model, &test, &device),
            test.labels(),
        )
        .map_err(|e| e.to_string())?;
        println!("after:  {}", rounded(&after));
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = dispatch(args.backend, Train(args)).and_then(|r| r) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
