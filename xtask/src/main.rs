//! Developer tasks of pml-rs: `cargo xtask parity`, `cargo xtask bench`, `cargo xtask validate`.
//!
//! `parity` runs the PML golden cases on a backend compiled into this binary (features
//! `ndarray` (default), `wgpu`, `cuda`) and prints `FAIL <id>: <reason>` per failing case and,
//! last, `N passed, M failed`. `bench` runs the criterion benches of `benches/` once per
//! workload (see [`bench`]), optionally side by side with PML.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use clap::{Parser, Subcommand, ValueEnum};

mod bench;
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
        /// Backend to run on (must be compiled in: `--features wgpu` / `--features cuda`).
        #[arg(long, value_enum, default_value_t = BackendKind::Ndarray)]
        backend: BackendKind,
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
    },
    /// Run fmt --check, clippy -D warnings, doc tests and the test suite.
    Validate,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendKind {
    Ndarray,
    Wgpu,
    Cuda,
}

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
        _ => Err("this backend is not compiled in: rebuild xtask with `--features wgpu` or `--features cuda`".into()),
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

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::Parity {
            cases,
            filter,
            backend,
            strict,
        } => match run_parity(&cases, filter.as_deref(), backend) {
            Ok(report) => {
                print!("{}", report.render());
                let ok = report.failed.is_empty() && (!strict || report.not_implemented.is_empty());
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
        },
        Task::Bench {
            vs_pml,
            json,
            workloads,
            filter,
        } => {
            let args = bench::BenchArgs {
                vs_pml,
                json,
                workloads,
                filter,
            };
            match bench::bench(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Task::Validate => {
            if validate() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
