//! How one call of the matrix is judged: [`Expect`], [`Verdict`], [`Record`], [`Report`].

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use pml_core::PmlError;

/// What kind of bad input a row is, which decides whether a panic is acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Bad *data* (NaN values, an empty batch, one class, odd labels, a corrupt file): the call
    /// must return a checked value or a [`PmlError`]; a panic is undefined.
    Data,
    /// A programmer contract violation (labels of the wrong length, widths that differ, a
    /// missing argument): a [`PmlError`] or a panic whose message names one of these arguments.
    Contract(&'static [&'static str]),
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A value that passed its checks (finite loss with a gradient, valid indices, ...).
    Value,
    /// A [`PmlError`], with its message.
    Error(String),
    /// A documented contract panic whose message names the argument.
    ContractPanic(String),
    /// Anything else: the reason.
    Undefined(String),
}

impl Verdict {
    /// Whether this outcome is undefined.
    pub fn is_undefined(&self) -> bool {
        matches!(self, Verdict::Undefined(_))
    }
}

/// One row of the matrix: an entry point, an input, and how it ended.
#[derive(Clone, Debug)]
pub struct Record {
    /// The entry point (`TripletMarginLoss::try_forward`, `MPerClassSampler::try_init`, ...).
    pub entry: String,
    /// The bad input.
    pub input: String,
    /// The outcome.
    pub verdict: Verdict,
}

/// Every row tried so far.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The rows, in the order they ran.
    pub records: Vec<Record>,
}

impl Report {
    /// Runs `call` (an entry point on one bad input), judges it against `expect` and records it.
    ///
    /// `call` returns `Ok(Ok(()))` for a value that passed its checks, `Ok(Err(reason))` for a
    /// value that failed them (a NaN loss, an index out of range), `Err(e)` for a [`PmlError`].
    pub fn check(
        &mut self,
        entry: impl Into<String>,
        input: impl Into<String>,
        expect: Expect,
        call: impl FnOnce() -> Result<Result<(), String>, PmlError>,
    ) {
        let verdict = match panic::catch_unwind(AssertUnwindSafe(call)) {
            Ok(Ok(Ok(()))) => Verdict::Value,
            Ok(Ok(Err(reason))) => Verdict::Undefined(reason),
            Ok(Err(e)) => Verdict::Error(e.to_string()),
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                match expect {
                    Expect::Contract(args) if args.iter().any(|a| message.contains(a)) => {
                        Verdict::ContractPanic(message)
                    }
                    Expect::Contract(args) => {
                        Verdict::Undefined(format!("panic that names none of {args:?}: {message}"))
                    }
                    Expect::Data => Verdict::Undefined(format!("panic on bad data: {message}")),
                }
            }
        };
        self.records.push(Record {
            entry: entry.into(),
            input: input.into(),
            verdict,
        });
    }

    /// The undefined rows.
    pub fn undefined(&self) -> Vec<&Record> {
        self.records
            .iter()
            .filter(|r| r.verdict.is_undefined())
            .collect()
    }

    /// `N inputs tried, M undefined`.
    pub fn summary(&self) -> String {
        format!(
            "{} inputs tried, {} undefined",
            self.records.len(),
            self.undefined().len()
        )
    }

    /// One line per undefined row: `UNDEFINED <entry> on <input>: <reason>`.
    pub fn undefined_lines(&self) -> Vec<String> {
        self.undefined()
            .iter()
            .map(|r| match &r.verdict {
                Verdict::Undefined(reason) => {
                    format!("UNDEFINED {} on {}: {reason}", r.entry, r.input)
                }
                _ => unreachable!("filtered on undefined"),
            })
            .collect()
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

thread_local! {
    /// How many [`QuietPanics`] are alive on this thread.
    static QUIET_HERE: Cell<usize> = const { Cell::new(0) };
}

/// Installs, once, a panic hook that stays silent on threads holding a [`QuietPanics`] and
/// calls the previous hook everywhere else.
static INSTALL: Once = Once::new();

/// Silences panic messages on this thread while alive (the matrix provokes panics on purpose
/// and reports them itself); other threads, such as the test harness's, keep theirs.
pub(crate) struct QuietPanics;

impl QuietPanics {
    pub(crate) fn new() -> Self {
        INSTALL.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if QUIET_HERE.with(Cell::get) == 0 {
                    previous(info);
                }
            }));
        });
        QUIET_HERE.with(|q| q.set(q.get() + 1));
        QuietPanics
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        QUIET_HERE.with(|q| q.set(q.get() - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(
        expect: Expect,
        call: impl FnOnce() -> Result<Result<(), String>, PmlError>,
    ) -> Verdict {
        let _quiet = QuietPanics::new();
        let mut report = Report::default();
        report.check("entry", "input", expect, call);
        report.records.remove(0).verdict
    }

    #[test]
    fn outcomes_are_judged_by_kind() {
        assert_eq!(verdict(Expect::Data, || Ok(Ok(()))), Verdict::Value);
        assert!(verdict(Expect::Data, || Ok(Err("NaN loss".into()))).is_undefined());
        assert!(matches!(
            verdict(Expect::Data, || Err(PmlError::invalid_input(
                "labels", "empty"
            ))),
            Verdict::Error(_)
        ));
        assert!(verdict(Expect::Data, || panic!("labels are odd")).is_undefined());
        assert!(matches!(
            verdict(Expect::Contract(&["labels"]), || panic!(
                "labels has length 3"
            )),
            Verdict::ContractPanic(_)
        ));
        assert!(
            verdict(Expect::Contract(&["labels"]), || panic!(
                "index out of bounds"
            ))
            .is_undefined()
        );
    }

    #[test]
    fn the_summary_counts_undefined_rows() {
        let _quiet = QuietPanics::new();
        let mut report = Report::default();
        report.check("a", "x", Expect::Data, || Ok(Ok(())));
        report.check("b", "y", Expect::Data, || panic!("boom"));
        assert_eq!(report.summary(), "2 inputs tried, 1 undefined");
        assert_eq!(
            report.undefined_lines(),
            vec!["UNDEFINED b on y: panic on bad data: boom".to_string()]
        );
    }
}
