//! Criterion benches of every workload in `benches/workloads.json` (or the file named by
//! `PML_BENCH_WORKLOADS`) on the ndarray CPU backend: losses (forward + backward), miners and
//! the AccuracyCalculator, each step ending with a device sync before the clock is read.
//!
//! `cargo bench -p pml-benches -- [criterion filter]`; `cargo xtask bench` runs each workload in
//! its own process and adds the peak memory that this binary prints last
//! ([`pml_benches::PEAK_RSS_PREFIX`]). A workload's inputs are built only when criterion
//! selects it, so the peak belongs to the workloads run.

use std::{cell::OnceCell, path::PathBuf, time::Duration};

use burn::backend::{Autodiff, NdArray};
use criterion::Criterion;
use pml_benches::{PEAK_RSS_PREFIX, Task, WORKLOADS_ENV, default_workloads_path, load_workloads};

type B = Autodiff<NdArray>;

fn main() {
    let path = std::env::var_os(WORKLOADS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(default_workloads_path);
    let workloads = load_workloads(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let device = Default::default();
    for workload in &workloads {
        let (group, function) = workload.group_and_function();
        let task = OnceCell::new();
        criterion
            .benchmark_group(group)
            .bench_function(function, |bencher| {
                let task = task.get_or_init(|| {
                    Task::<B>::prepare(workload, &device)
                        .unwrap_or_else(|e| panic!("{}: {e}", workload.id))
                });
                bencher.iter(|| task.run());
            });
    }
    criterion.final_summary();
    if let Some(mb) = pml_benches::peak_rss_mb() {
        println!("{PEAK_RSS_PREFIX}{mb:.1}");
    }
}
