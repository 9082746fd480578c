//! The parity harness of **pml-rs**: loads golden cases computed by pytorch-metric-learning
//! (the format of `testdata/parity/FORMAT.md`), builds every object from the case's `spec`,
//! runs it with autodiff on any Burn backend and compares values and gradients with the case's
//! tolerances.
//!
//! Used by the integration tests and by `cargo xtask parity`.
#![warn(missing_docs)]

mod accuracy;
pub mod case;
mod miners;
pub mod runner;

pub use case::{Case, load_cases, parse_cases, raw_tensor};
pub use runner::{Outcome, Report, run_case, run_cases};
