//! Runs every parity case in `testdata/parity` (PML's golden cases) and `testdata/parity-alt`
//! (a second set from `tools/gen_parity_cases.py`) on the ndarray backend: each case must pass
//! or report `not implemented` for a PML class the port does not have yet; every implemented
//! class must pass all its cases.

use std::path::PathBuf;

use burn::backend::{Autodiff, NdArray};
use pml_testing::{load_cases, run_cases};

#[test]
fn parity_cases_pass_or_are_not_implemented() {
    check_cases("parity");
}

#[test]
fn second_case_set_passes_or_is_not_implemented() {
    check_cases("parity-alt");
}

/// Runs the cases of `testdata/<folder>`.
fn check_cases(folder: &str) {
    // The package folder as cargo gives it when it runs the test (a test binary reused from a
    // build in another checkout must read this checkout's cases), else where it was built.
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let dir = package.join("../../testdata").join(folder);
    let cases = load_cases(&dir).expect("parity cases load");
    let report = run_cases::<Autodiff<NdArray>>(&cases, None, &Default::default());
    print!("{}", report.render());
    assert!(
        report.failed.is_empty(),
        "{} parity cases of {folder} failed",
        report.failed.len()
    );
    // A `not implemented` verdict must name a class the port really lacks.
    for (id, name) in &report.not_implemented {
        assert!(
            pml_testing::runner::is_unimplemented(name),
            "{id}: reported `not implemented: {name}` but {name} is implemented"
        );
    }
    assert!(!report.passed.is_empty());
}
