//! Times `AccuracyCalculator::get_accuracy` on the accuracy workload of `../shared/bench`:
//! random normal `[n, d]` embeddings, labels `i % n_classes` shuffled, query = reference,
//! `k = "max_bin_count"`, metrics precision_at_1, r_precision, mean_average_precision_at_r.
//!
//! `cargo run --release -p pml-eval --example accuracy_bench -- [n] [d] [n_classes] [query_batch_size] [reference_batch_size]`
//! (default 50000 128 500 1024 4096). Prints the time and the peak resident memory.

use std::time::Instant;

use burn::backend::NdArray;
use burn::tensor::{Distribution, Tensor};
use pml_core::rng::SeededRng;
use pml_eval::{AccuracyCalculatorConfig, AccuracyInput, AccuracyK, KnnConfig};

type B = NdArray;

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments: n d n_classes"))
        .collect();
    let n = args.first().copied().unwrap_or(50_000);
    let d = args.get(1).copied().unwrap_or(128);
    let classes = args.get(2).copied().unwrap_or(500);
    let qb = args.get(3).copied().unwrap_or(1024);
    let rb = args.get(4).copied().unwrap_or(4096);
    let device = Default::default();
    let emb = Tensor::<B, 2>::random([n, d], Distribution::Normal(0.0, 1.0), &device);
    let rng = SeededRng::new(0);
    let mut labels: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    for i in (1..n).rev() {
        labels.swap(i, rng.below(i + 1));
    }
    let calc = AccuracyCalculatorConfig::new()
        .with_include(vec![
            "precision_at_1".into(),
            "r_precision".into(),
            "mean_average_precision_at_r".into(),
        ])
        .with_k(AccuracyK::MaxBinCount)
        .with_knn(
            KnnConfig::new()
                .with_query_batch_size(qb)
                .with_reference_batch_size(rb),
        )
        .init();
    println!(
        "before: peak RSS {:.0} MB",
        peak_rss_mb().unwrap_or(f64::NAN)
    );
    let t0 = Instant::now();
    let acc = calc
        .get_accuracy(
            AccuracyInput::new(emb.clone(), labels.clone())
                .with_reference(emb, labels)
                .with_ref_includes_query(true),
        )
        .expect("accuracy");
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    println!(
        "n={n} d={d} classes={classes}: {ms:.0} ms, peak RSS {:.0} MB, {acc:?}",
        peak_rss_mb().unwrap_or(f64::NAN)
    );
}
