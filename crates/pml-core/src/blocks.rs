//! Independent blocks of tensor work on the CPU's threads.
//!
//! burn-ndarray runs each element-wise kernel on one thread (only its matrix products use
//! several), so a loss that walks its distance matrix in blocks of rows one block at a time
//! leaves the other cores idle. [`map_blocks`] runs the blocks on rayon's threads when
//! [`block_threads`] says the backend computes on the host; on the GPU backends kernels are
//! queued asynchronously from one thread and the blocks stay in order on it.
//!
//! Burn tensors are `Send + Sync` and its autodiff graph is shared behind a mutex, so blocks may
//! build graph nodes; results come back in block order, so what is summed from them is summed
//! in the same order on any number of threads.

use std::num::NonZeroUsize;
use std::ops::Range;

use burn::tensor::backend::Backend;
use rayon::prelude::*;

/// The entries of a block of rows of a distance matrix that a loss walks in blocks: `2^20`
/// (4 MB in `f32`). Each temporary of a block is then a small allocation that the allocator
/// recycles (and that stays in cache), where a whole `[n, m]` temporary at `n = m = 4096` is a
/// fresh 64 MB mapping paged in at every step.
pub const BLOCK_ENTRIES: usize = 1 << 20;

/// The threads [`map_blocks`] should use on `device`: the CPU's threads on burn-ndarray (alone
/// or under autodiff), whose element-wise kernels are single-threaded; 1 on other backends.
pub fn block_threads<B: Backend>(device: &B::Device) -> usize {
    if B::name(device).contains("ndarray") {
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
    } else {
        1
    }
}

/// `[f(0), f(1), …, f(count − 1)]`, in index order: on rayon's thread pool (burn-ndarray's)
/// when `threads > 1`, else in order on the calling thread. A panic in `f` is resumed on the
/// calling thread.
pub fn map_blocks<T: Send>(count: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    map_owned((0..count).collect(), threads, f)
}

/// `[f(items[0]), f(items[1]), …]`, in order, as [`map_blocks`] runs them: for blocks that the
/// caller owns, so that `f` consumes each (burn-ndarray then computes in place on tensors it
/// holds alone instead of copying them first).
pub fn map_owned<I: Send, T: Send>(
    items: Vec<I>,
    threads: usize,
    f: impl Fn(I) -> T + Sync,
) -> Vec<T> {
    if threads <= 1 || items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    items.into_par_iter().map(&f).collect()
}

/// Blocks of rows covering `0..rows` of a `[rows, cols]` matrix, in order: about
/// `entries / cols` rows each (at least one), fewer where that leaves a thread without a block;
/// one empty block `0..0` when there are no rows.
pub fn row_blocks(rows: usize, cols: usize, entries: usize, threads: usize) -> Vec<Range<usize>> {
    let size = (entries / cols.max(1))
        .min(rows.div_ceil(threads.max(1)))
        .clamp(1, rows.max(1));
    (0..rows.max(1))
        .step_by(size)
        .map(|start| start..(start + size).min(rows))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    #[test]
    fn blocks_come_back_in_order_on_any_number_of_threads() {
        for threads in [1, 2, 3, 8] {
            for count in [0, 1, 2, 5, 16] {
                let got = map_blocks(count, threads, |i| i * i);
                assert_eq!(got, (0..count).map(|i| i * i).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn row_blocks_cover_the_rows_once() {
        assert_eq!(row_blocks(0, 10, 100, 2), vec![0..0]);
        assert_eq!(row_blocks(5, 0, 100, 1), vec![0..5]);
        // Entries allow 10 rows, two threads ask for two blocks.
        assert_eq!(row_blocks(12, 10, 100, 2), vec![0..6, 6..12]);
        assert_eq!(row_blocks(25, 10, 100, 1), vec![0..10, 10..20, 20..25]);
        // Rows wider than the budget go one by one.
        assert_eq!(row_blocks(3, 1000, 100, 1), vec![0..1, 1..2, 2..3]);
        for (rows, cols, entries, threads) in [(1024, 1000, 1 << 20, 2), (7, 3, 5, 4)] {
            let blocks = row_blocks(rows, cols, entries, threads);
            assert!(blocks.len() >= threads.min(rows));
            assert_eq!(blocks[0].start, 0);
            assert_eq!(blocks.last().map(|b| b.end), Some(rows));
            assert!(blocks.windows(2).all(|w| w[0].end == w[1].start));
        }
    }

    #[test]
    #[should_panic(expected = "block 3")]
    fn a_panic_in_a_block_reaches_the_caller() {
        map_blocks(4, 2, |i| assert!(i != 3, "block {i}"));
    }

    #[test]
    fn host_backends_use_threads() {
        let device = Default::default();
        let expected = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(block_threads::<NdArray>(&device), expected);
        assert_eq!(block_threads::<Autodiff<NdArray>>(&device), expected);
    }
}
