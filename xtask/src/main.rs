//! Developer tasks of pml-rs: `cargo xtask parity`, `cargo xtask bench`, `cargo xtask validate`.
//!
//! `parity` runs the PML golden cases on one backend and prints `FAIL <id>: <reason>` per failing
//! case and, last, `N passed, M failed`. `bench` runs the criterion benches of `benches/` once per
//! workload (see [`bench`]), optionally side by side with PML. `reliability` runs the bad-input
//! matrix (crate `pml-reliability`, on ndarray) and prints `N inputs tried, M undefined`.
//!
//! The backend is `--backend` (`ndarray`, `wgpu`, `cuda`), else the one the `PML_BACKEND`
//! environment variable names, else ndarray. This binary compiles the backends of its features
//! (`ndarray` by default); asked for a backend it lacks, `parity` rebuilds and reruns xtask with
//! that feature added (`cargo run -p xtask --features wgpu -- ...`), so that
//! `cargo xtask parity --backend wgpu` works as written.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use clap::{Parser, Subcommand};

mod bench;
mod reliability;
use pml_core::backend::BackendKind;
use pml_testing::{Report, load_cases, run_cases};

#[derive(Parser)]
#[command(about = "pml-rs developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the PML parity cases.
    Parity {
        /// Directory of case files (`*.json`, the format of testdata/parity/FORMAT.md).
        #[arg(long, default_value = "testdata/parity")]
        cases: PathBuf,
        /// Only cases whose id contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Backend to run on: ndarray, wgpu or cuda, compiled into this binary by the xtask
        /// feature of the same name. Default: the one PML_BACKEND names, else ndarray.
        #[arg(long, value_name = "NAME")]
        backend: Option<BackendKind>,
        /// Exit with failure also when cases need PML classes not implemented yet.
        #[arg(long)]
        strict: bool,
    },
    /// Time every workload (release build, one process per workload) and print a table.
    Bench {
        /// Also run PML's reference script with this Python interpreter and compare.
        #[arg(long, value_name = "PYTHON")]
        vs_pml: Option<PathBuf>,
        /// Write the rows as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Workloads file (the schema of benches/workloads.json).
        #[arg(long, value_name = "FILE", default_value_os_t = pml_benches::default_workloads_path())]
        workloads: PathBuf,
        /// Only workloads whose id (`kind/Name_n<n>_d<d>`) contains this text.
        #[arg(long, value_name = "S")]
        filter: Option<String>,
        /// Backend to time: ndarray, wgpu or cuda (the bench binary is built with the
        /// pml-benches feature of that name). Default: the one PML_BACKEND names, else ndarray.
        #[arg(long, value_name = "NAME")]
        backend: Option<BackendKind>,
        /// Run this prebuilt bench binary (`cargo bench -p pml-benches --bench workloads
        /// --no-run`, built with the backend's feature) instead of building one.
        #[arg(long, value_name = "FILE")]
        exe: Option<PathBuf>,
    },
    /// Run fmt --check, clippy -D warnings, doc tests and the test suite.
    Validate,
    /// Run the bad-input matrix and print `N inputs tried, M undefined` (fails when M > 0).
    Reliability {
        /// Print every row's outcome, not only the undefined ones.
        #[arg(long)]
        verbose: bool,
    },
}

/// The backend when neither `--backend` nor `PML_BACKEND` names one: the first compiled in of
/// ndarray, wgpu, cuda.
const DEFAULT_BACKEND: BackendKind =
    BackendKind::first_compiled(cfg!(feature = "ndarray"), cfg!(feature = "wgpu"));

fn run_parity(cases: &Path, filter: Option<&str>, backend: BackendKind) -> Result<Report, String> {
    let cases = load_cases(cases).map_err(|e| e.to_string())?;
    match backend {
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => {
            type B = burn::backend::Autodiff<burn::backend::NdArray>;
            Ok(run_cases::<B>(&cases, filter, &Default::default()))
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            type B = burn::backend::Autodiff<burn::backend::Wgpu>;
            Ok(run_cases::<B>(&cases, filter, &Default::default()))
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            type B = burn::backend::Autodiff<burn::backend::Cuda>;
            Ok(run_cases::<B>(&cases, filter, &Default::default()))
        }
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "backend {other} is not compiled into this xtask: rebuild it with `--features {other}` \
             (cargo run -p xtask --features {other} -- parity --backend {other})"
        )),
    }
}

fn validate() -> bool {
    let steps: [&[&str]; 4] = [
        &["fmt", "--all", "--check"],
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &["doc", "--workspace", "--no-deps"],
        &["test", "--workspace"],
    ];
    steps.iter().all(|args| {
        println!("cargo {}", args.join(" "));
        Command::new(env!("CARGO"))
            .args(*args)
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Whether this binary was built with `kind`'s feature.
fn compiled_in(kind: BackendKind) -> bool {
    match kind {
        BackendKind::Ndarray => cfg!(feature = "ndarray"),
        BackendKind::Wgpu => cfg!(feature = "wgpu"),
        BackendKind::Cuda => cfg!(feature = "cuda"),
    }
}

/// Set in the environment of an xtask that another one started with more features, so that a
/// build that still lacks the backend fails instead of starting itself again.
const REEXEC_ENV: &str = "PML_XTASK_REEXEC";

/// Runs this xtask's command line again through `cargo run -p xtask --features <kind>` (the
/// same target folder, so the build is reused) and returns its exit status.
fn rerun_with_feature(kind: BackendKind) -> ExitCode {
    eprintln!("xtask: the {kind} backend is not compiled in; running it with `--features {kind}`");
    let status = Command::new(env!("CARGO"))
        .args(["run", "-p", "xtask", "--features", kind.name(), "--"])
        .args(std::env::args_os().skip(1))
        .env(REEXEC_ENV, "1")
        .status();
    match status {
        Ok(s) => ExitCode::from(s.code().map_or(1, |c| u8::try_from(c).unwrap_or(1))),
        Err(e) => {
            eprintln!("error: running cargo: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::Parity {
            cases,
            filter,
            backend,
            strict,
        } => {
            let backend = match BackendKind::choose(backend, DEFAULT_BACKEND) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if !compiled_in(backend) && std::env::var_os(REEXEC_ENV).is_none() {
                return rerun_with_feature(backend);
            }
            match run_parity(&cases, filter.as_deref(), backend) {
                Ok(report) => {
                    print!("{}", report.render());
                    let ok =
                        report.failed.is_empty() && (!strict || report.not_implemented.is_empty());
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Task::Bench {
            vs_pml,
            json,
            workloads,
            filter,
            backend,
            exe,
        } => {
            let run = BackendKind::choose(backend, DEFAULT_BACKEND).and_then(|backend| {
                bench::bench(&bench::BenchArgs {
                    vs_pml,
                    json,
                    workloads,
                    filter,
                    backend,
                    exe,
                })
            });
            match run {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Task::Reliability { verbose } => reliability::reliability(verbose),
        Task::Validate => {
            if validate() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
