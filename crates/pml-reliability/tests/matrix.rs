//! The bad-input matrix as tests: one per family, each must have no undefined row.

use pml_reliability::{Family, Report};

fn no_undefined(family: Family) {
    let mut report = Report::default();
    family.run(&mut report);
    assert!(!report.records.is_empty(), "{family:?}: no rows");
    let lines = report.undefined_lines();
    assert!(
        lines.is_empty(),
        "{family:?}: {}\n{}",
        report.summary(),
        lines.join("\n")
    );
}

#[test]
fn losses() {
    no_undefined(Family::Losses);
}

#[test]
fn miners() {
    no_undefined(Family::Miners);
}

#[test]
fn reducers() {
    no_undefined(Family::Reducers);
}

#[test]
fn distances() {
    no_undefined(Family::Distances);
}

#[test]
fn eval() {
    no_undefined(Family::Eval);
}

#[test]
fn samplers() {
    no_undefined(Family::Samplers);
}

#[test]
fn datasets() {
    no_undefined(Family::Datasets);
}

#[test]
fn the_matrix_tries_at_least_300_inputs() {
    let report = pml_reliability::run_matrix();
    println!("{}", report.summary());
    assert!(report.records.len() >= 300, "{}", report.summary());
}
