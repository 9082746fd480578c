//! `cargo xtask reliability`: the bad-input matrix of `pml-reliability` (issue 9).

use std::process::ExitCode;

/// Runs the matrix, prints one `UNDEFINED ...` line per undefined row (every row with
/// `verbose`), then `N inputs tried, M undefined`; fails when `M > 0`.
pub fn reliability(verbose: bool) -> ExitCode {
    let report = pml_reliability::run_matrix();
    if verbose {
        for r in &report.records {
            println!("{:?}: {} on {}", r.verdict, r.entry, r.input);
        }
    }
    for line in report.undefined_lines() {
        println!("{line}");
    }
    println!("{}", report.summary());
    if report.undefined().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
