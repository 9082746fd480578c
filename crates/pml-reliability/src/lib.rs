//! The bad-input matrix of pml-rs (issue 9): every public entry point (each loss, miner,
//! reducer, distance, the `AccuracyCalculator`, the kNN index, the samplers and the dataset
//! readers) is called with malformed inputs (NaN and infinite embeddings, an empty batch, a batch
//! of one, one class only, every sample its own class, labels of the wrong length, a reference
//! without labels, `k` larger than the reference, a one-row reference, negative or huge labels,
//! widths that differ from a loss's `embedding_size`, truncated and corrupt files, ...).
//!
//! Every call ends in one of the outcomes of [`Verdict`]: a checked value (a finite loss whose
//! gradient reaches the embeddings, valid indices, ...), a [`PmlError`](pml_core::PmlError), or,
//! for programmer contract violations only (DESIGN.md, Errors), a panic whose message names the
//! argument. Anything else (a NaN loss from finite data, an out-of-bounds index, a panic on bad
//! data, a panic that does not name the argument) is *undefined*, and the matrix reports it.
//!
//! Tensor ranks are checked by the type system (`Tensor<B, 2>` embeddings, `Tensor<B, 1, Int>`
//! labels): rank errors can only come from data, so they are tried on the dataset readers (IDX
//! files of the wrong rank, CSV rows of the wrong width).
//!
//! `cargo xtask reliability` prints [`Report::summary`]; `tests/matrix.rs` runs the same matrix.
#![warn(missing_docs)]

mod batch;
mod datasets;
mod distances;
mod eval;
mod losses;
mod miners;
mod outcome;
mod reducers;
mod samplers;

pub use outcome::{Expect, Record, Report, Verdict};

/// The backend the matrix runs on: CPU, with autodiff so loss gradients are checked.
pub type Backend = burn::backend::Autodiff<burn::backend::NdArray>;

/// One family of entry points of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Every loss and loss wrapper (`forward` and `try_forward`).
    Losses,
    /// Every miner.
    Miners,
    /// Every reducer.
    Reducers,
    /// Every distance.
    Distances,
    /// `AccuracyCalculator::get_accuracy` and the kNN index.
    Eval,
    /// The samplers.
    Samplers,
    /// The IDX and CSV readers and the image-folder layouts.
    Datasets,
}

impl Family {
    /// Every family, in the order the report lists them.
    pub const ALL: [Family; 7] = [
        Family::Losses,
        Family::Miners,
        Family::Reducers,
        Family::Distances,
        Family::Eval,
        Family::Samplers,
        Family::Datasets,
    ];

    /// Runs this family's rows of the matrix into `report`.
    pub fn run(self, report: &mut Report) {
        let _quiet = outcome::QuietPanics::new();
        match self {
            Family::Losses => losses::run(report),
            Family::Miners => miners::run(report),
            Family::Reducers => reducers::run(report),
            Family::Distances => distances::run(report),
            Family::Eval => eval::run(report),
            Family::Samplers => samplers::run(report),
            Family::Datasets => datasets::run(report),
        }
    }
}

/// Runs the whole matrix.
pub fn run_matrix() -> Report {
    let mut report = Report::default();
    for family in Family::ALL {
        family.run(&mut report);
    }
    report
}
