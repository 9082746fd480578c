//! Criterion benches of every workload in `benches/workloads.json` (or the file named by
//! `PML_BENCH_WORKLOADS`): losses (forward + backward), miners and the AccuracyCalculator, each
//! step ending with a device sync before the clock is read.
//!
//! The backend is the one the `PML_BACKEND` environment variable names (`ndarray`, `wgpu`,
//! `cuda`; default: the first compiled in), among those compiled in by the pml-benches features
//! of the same names (`cargo bench -p pml-benches --features wgpu`).
//!
//! `cargo bench -p pml-benches -- [criterion filter]`; `cargo xtask bench` runs each workload in
//! its own process and adds the peak memory that this binary prints last
//! ([`pml_benches::PEAK_RSS_PREFIX`]). A workload's inputs are built only when criterion
//! selects it, so the peak belongs to the workloads run.

use std::{cell::OnceCell, path::PathBuf, time::Duration};

use burn::tensor::backend::AutodiffBackend;
use criterion::Criterion;
use pml_benches::{PEAK_RSS_PREFIX, Task, WORKLOADS_ENV, default_workloads_path, load_workloads};
use pml_core::backend::BackendKind;

/// jemalloc keeps freed pages for the next step's tensors; with glibc, every tensor larger than
/// its mapping threshold is a fresh mapping whose pages fault in again at every step.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The backend when `PML_BACKEND` is unset: the first compiled in of ndarray, wgpu, cuda.
const DEFAULT_BACKEND: BackendKind =
    BackendKind::first_compiled(cfg!(feature = "ndarray"), cfg!(feature = "wgpu"));

fn main() {
    let backend = BackendKind::choose(None, DEFAULT_BACKEND).unwrap_or_else(|e| panic!("{e}"));
    match backend {
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => bench::<burn::backend::Autodiff<burn::backend::NdArray>>(),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => bench::<burn::backend::Autodiff<burn::backend::Wgpu>>(),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => bench::<burn::backend::Autodiff<burn::backend::Cuda>>(),
        #[allow(unreachable_patterns)]
        other => panic!(
            "backend {other} is not compiled into this bench: rebuild it with \
             `cargo bench -p pml-benches --features {other}`"
        ),
    }
}

/// Runs every workload on backend `B` and its default device.
fn bench<B: AutodiffBackend>() {
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
