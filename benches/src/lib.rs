//! The benchmark workloads of pml-rs, shared with PML's reference script
//! (`benches/pml_reference.py`): loading a workloads file, building each workload's inputs and
//! object from its PML spec, and running one timed step. Used by the criterion bench
//! (`benches/workloads.rs`) and by `cargo xtask bench`.
//!
//! Inputs are as in the reference script: embeddings drawn from a standard normal, `[n, d]`
//! float32, and labels `i % n_classes` shuffled (the seeds differ from PyTorch's).
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use burn::tensor::{
    Distribution, Int, Tensor,
    backend::{AutodiffBackend, Backend},
};
use pml_core::{LossInput, MetricLoss, Miner, rng::SeededRng};
use pml_eval::{AccuracyCalculator, AccuracyCalculatorConfig, AccuracyInput, AccuracyK, KnnConfig};
use pml_losses::{AnyLoss, LossConfig};
use pml_miners::{AnyMiner, MinerConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environment variable naming the workloads file the bench binary runs (default:
/// [`default_workloads_path`]).
pub const WORKLOADS_ENV: &str = "PML_BENCH_WORKLOADS";

/// The prefix of the line on which the bench binary reports its peak resident memory.
pub const PEAK_RSS_PREFIX: &str = "pml-bench peak_rss_mb ";

/// What a workload times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One loss forward plus backward (gradients w.r.t. the embeddings and trainable weights).
    Loss,
    /// One mining call.
    Miner,
    /// `AccuracyCalculator::get_accuracy` with query = reference and `k = "max_bin_count"`.
    Accuracy,
}

impl Kind {
    /// The key of this kind in a workloads file (`"loss"`, `"miner"`, `"accuracy"`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Loss => "loss",
            Self::Miner => "miner",
            Self::Accuracy => "accuracy",
        }
    }

    const ALL: [Kind; 3] = [Kind::Loss, Kind::Miner, Kind::Accuracy];
}

/// One entry of a workloads file, as written there.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// PML's class name (absent for accuracy workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// PML's constructor arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Batch size.
    pub n: usize,
    /// Embedding width.
    pub d: usize,
    /// Number of classes of the labels.
    pub n_classes: usize,
    /// The AccuracyCalculator's metrics (accuracy workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
}

/// A workload: an entry with its kind and a unique id.
#[derive(Clone, Debug)]
pub struct Workload {
    /// What it times.
    pub kind: Kind,
    /// The entry of the workloads file.
    pub entry: Entry,
    /// `kind/Name_n<n>_d<d>` (with `_<index>` appended where two entries would share it): the
    /// criterion benchmark id.
    pub id: String,
}

impl Workload {
    /// The class name, `"AccuracyCalculator"` for accuracy workloads (as PML's script names them).
    pub fn name(&self) -> &str {
        self.entry.name.as_deref().unwrap_or("AccuracyCalculator")
    }

    /// The criterion group (the kind) and function name of [`id`](Self::id).
    pub fn group_and_function(&self) -> (&str, &str) {
        self.id.split_once('/').expect("ids are `kind/function`")
    }
}

/// The workloads file in this repository (a copy of the one shared with PML's script).
pub fn default_workloads_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads.json")
}

/// Reads a workloads file: `{"loss": [...], "miner": [...], "accuracy": [...]}` (other keys,
/// such as `"about"`, are ignored).
///
/// # Errors
/// An unreadable file, invalid JSON or an entry without `n`, `d` or `n_classes`, a loss or
/// miner without `name`, `n_classes = 0`.
pub fn load_workloads(path: &Path) -> Result<Vec<Workload>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse_workloads(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the text of a workloads file (see [`load_workloads`]).
///
/// # Errors
/// As [`load_workloads`].
pub fn parse_workloads(text: &str) -> Result<Vec<Workload>, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out: Vec<Workload> = Vec::new();
    for kind in Kind::ALL {
        let Some(list) = root.get(kind.key()) else {
            continue;
        };
        let entries: Vec<Entry> =
            serde_json::from_value(list.clone()).map_err(|e| format!("`{}`: {e}", kind.key()))?;
        for (index, entry) in entries.into_iter().enumerate() {
            if kind != Kind::Accuracy && entry.name.is_none() {
                return Err(format!("{}[{index}]: `name` is required", kind.key()));
            }
            if entry.n_classes == 0 || entry.n == 0 {
                return Err(format!(
                    "{}[{index}]: n and n_classes must be > 0",
                    kind.key()
                ));
            }
            let name = entry.name.as_deref().unwrap_or("AccuracyCalculator");
            let mut id = format!("{}/{name}_n{}_d{}", kind.key(), entry.n, entry.d);
            if out.iter().any(|w| w.id == id) {
                id = format!("{id}_{index}");
            }
            out.push(Workload { kind, entry, id });
        }
    }
    Ok(out)
}

/// Writes `workloads` as a workloads file (the schema [`load_workloads`] reads and PML's script
/// runs).
pub fn workloads_json(workloads: &[Workload]) -> Value {
    let mut root = serde_json::Map::new();
    for kind in Kind::ALL {
        let entries: Vec<&Entry> = workloads
            .iter()
            .filter(|w| w.kind == kind)
            .map(|w| &w.entry)
            .collect();
        if !entries.is_empty() {
            root.insert(
                kind.key().into(),
                serde_json::to_value(entries).expect("entries serialize"),
            );
        }
    }
    Value::Object(root)
}

/// The labels of a workload: `i % n_classes` for `i < n`, shuffled (Fisher–Yates, seeded).
pub fn shuffled_labels(n: usize, n_classes: usize, seed: u64) -> Vec<i64> {
    let rng = SeededRng::new(seed);
    let mut labels: Vec<i64> = (0..n).map(|i| (i % n_classes) as i64).collect();
    for i in (1..n).rev() {
        labels.swap(i, rng.below(i + 1));
    }
    labels
}

/// A workload ready to run on backend `B`: its object and inputs, built once.
pub enum Task<B: AutodiffBackend> {
    /// A loss with its inputs.
    Loss {
        /// The loss (trainable weights, if any, live on the device).
        loss: Box<AnyLoss<B>>,
        /// `[n, d]` embeddings (a leaf that requires a gradient is made from them per step).
        embeddings: Tensor<B::InnerBackend, 2>,
        /// `[n]` labels.
        labels: Tensor<B, 1, Int>,
    },
    /// A miner with its inputs.
    Miner {
        /// The miner.
        miner: AnyMiner,
        /// `[n, d]` embeddings.
        embeddings: Tensor<B::InnerBackend, 2>,
        /// `[n]` labels.
        labels: Tensor<B::InnerBackend, 1, Int>,
    },
    /// An accuracy calculator with its inputs.
    Accuracy {
        /// The calculator.
        calculator: Box<AccuracyCalculator>,
        /// `[n, d]` embeddings.
        embeddings: Tensor<B::InnerBackend, 2>,
        /// `n` labels.
        labels: Vec<i64>,
    },
}

impl<B: AutodiffBackend> Task<B> {
    /// Builds the workload's object from its spec and draws its inputs on `device`.
    ///
    /// # Errors
    /// A spec that PML's names or arguments do not build here.
    pub fn prepare(workload: &Workload, device: &B::Device) -> Result<Self, String> {
        let e = &workload.entry;
        B::seed(device, 0);
        let embeddings = Tensor::<B::InnerBackend, 2>::random(
            [e.n, e.d],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        let labels = shuffled_labels(e.n, e.n_classes, 0);
        let spec = || {
            serde_json::json!({
                "name": workload.name(),
                "params": e.params.clone().unwrap_or(Value::Object(Default::default())),
            })
        };
        let label_tensor =
            || Tensor::<B::InnerBackend, 1, Int>::from_ints(labels.as_slice(), device);
        Ok(match workload.kind {
            Kind::Loss => {
                let config: LossConfig =
                    serde_json::from_value(spec()).map_err(|err| err.to_string())?;
                Self::Loss {
                    loss: Box::new(config.try_init(device).map_err(|err| err.to_string())?),
                    embeddings,
                    labels: Tensor::from_inner(label_tensor()),
                }
            }
            Kind::Miner => {
                let config: MinerConfig =
                    serde_json::from_value(spec()).map_err(|err| err.to_string())?;
                Self::Miner {
                    miner: config.try_init().map_err(|err| err.to_string())?,
                    embeddings,
                    labels: label_tensor(),
                }
            }
            Kind::Accuracy => {
                let calculator = AccuracyCalculatorConfig::new()
                    .with_include(e.include.clone().unwrap_or_default())
                    .with_k(AccuracyK::MaxBinCount)
                    .with_knn(KnnConfig::new().with_progress(false))
                    .try_init()
                    .map_err(|err| err.to_string())?;
                Self::Accuracy {
                    calculator: Box::new(calculator),
                    embeddings,
                    labels,
                }
            }
        })
    }

    /// Runs one step of the workload and waits for the device to finish it.
    ///
    /// # Panics
    /// If the AccuracyCalculator refuses its inputs (it does not for workload inputs).
    pub fn run(&self) {
        let device = match self {
            Self::Loss { embeddings, .. }
            | Self::Miner { embeddings, .. }
            | Self::Accuracy { embeddings, .. } => embeddings.device(),
        };
        match self {
            Self::Loss {
                loss,
                embeddings,
                labels,
            } => {
                let leaf = Tensor::<B, 2>::from_inner(embeddings.clone()).require_grad();
                let value = loss.forward(LossInput::new(leaf.clone(), labels.clone()));
                let grads = value.backward();
                let grad = leaf.grad(&grads).expect("the embeddings get a gradient");
                std::hint::black_box(grad);
            }
            Self::Miner {
                miner,
                embeddings,
                labels,
            } => {
                let tuple = miner.mine(embeddings.clone(), labels.clone(), None);
                std::hint::black_box(tuple);
            }
            Self::Accuracy {
                calculator,
                embeddings,
                labels,
            } => {
                let input = AccuracyInput::new(embeddings.clone(), labels.clone())
                    .with_reference(embeddings.clone(), labels.clone())
                    .with_ref_includes_query(true);
                let accuracies = calculator
                    .get_accuracy(input)
                    .expect("workload inputs are valid");
                std::hint::black_box(accuracies);
            }
        }
        B::InnerBackend::sync(&device).expect("the device finishes the step");
    }
}

/// This process's peak resident memory in MB (`VmHWM` of `/proc/self/status`; `None` where
/// that file does not exist).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_workloads_parse_with_unique_ids() {
        let w = load_workloads(&default_workloads_path()).unwrap();
        assert!(w.len() >= 18, "{}", w.len());
        let mut ids: Vec<&str> = w.iter().map(|w| w.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), w.len());
        assert_eq!(w[1].id, "loss/TripletMarginLoss_n1024_d128");
        let last = w.last().unwrap();
        assert_eq!(
            last.group_and_function(),
            ("accuracy", "AccuracyCalculator_n50000_d128")
        );
    }

    #[test]
    fn duplicate_entries_get_distinct_ids_and_round_trip() {
        let text = r#"{"loss": [{"name": "ContrastiveLoss", "params": {}, "n": 8, "d": 4, "n_classes": 2},
                                {"name": "ContrastiveLoss", "params": {"pos_margin": 0.1}, "n": 8, "d": 4, "n_classes": 2}]}"#;
        let w = parse_workloads(text).unwrap();
        assert_eq!(w[0].id, "loss/ContrastiveLoss_n8_d4");
        assert_eq!(w[1].id, "loss/ContrastiveLoss_n8_d4_1");
        let again = parse_workloads(&workloads_json(&w).to_string()).unwrap();
        assert_eq!(again[1].entry.params, w[1].entry.params);
    }

    #[test]
    fn missing_names_are_refused() {
        let err = parse_workloads(r#"{"miner": [{"n": 8, "d": 4, "n_classes": 2}]}"#).unwrap_err();
        assert!(err.contains("miner[0]: `name` is required"), "{err}");
    }

    #[test]
    fn labels_cover_every_class_evenly() {
        let mut l = shuffled_labels(10, 3, 1);
        assert_ne!(l, (0..10).map(|i| i % 3).collect::<Vec<i64>>());
        l.sort();
        assert_eq!(l, vec![0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn every_workload_kind_runs_on_a_small_batch() {
        type B = burn::backend::Autodiff<burn::backend::NdArray>;
        let text = r#"{"loss": [{"name": "TripletMarginLoss", "params": {"margin": 0.1}, "n": 12, "d": 4, "n_classes": 3},
                                {"name": "ArcFaceLoss", "params": {"num_classes": 3, "embedding_size": 4}, "n": 12, "d": 4, "n_classes": 3}],
                       "miner": [{"name": "BatchHardMiner", "params": {}, "n": 12, "d": 4, "n_classes": 3}],
                       "accuracy": [{"n": 12, "d": 4, "n_classes": 3, "include": ["precision_at_1"]}]}"#;
        for w in parse_workloads(text).unwrap() {
            Task::<B>::prepare(&w, &Default::default()).unwrap().run();
        }
    }
}
