//! Progress bars (kdam) for long loops: kNN searches, embedding whole datasets.

use kdam::{Bar, BarExt};

/// A progress bar that may be switched off; write errors are ignored (a progress bar never
/// stops a computation).
pub(crate) struct Progress(Option<Bar>);

impl Progress {
    /// A bar over `total` steps when `enabled`, nothing otherwise.
    pub fn new(desc: &str, total: usize, enabled: bool) -> Self {
        if !enabled || total == 0 {
            return Self(None);
        }
        Self(
            Bar::builder()
                .desc(desc)
                .total(total)
                .leave(false)
                .build()
                .ok(),
        )
    }

    /// One more step done.
    pub fn tick(&mut self, n: usize) {
        if let Some(bar) = &mut self.0 {
            let _ = bar.update(n);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &mut self.0 {
            let _ = bar.clear();
        }
    }
}
