//! Helpers shared by the integration tests: peers as threads, deterministic data.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use burn::backend::{Autodiff, NdArray};
use pml_distributed::{PeerGroup, PeerGroupConfig};

/// The CPU backend the tests train with.
pub type Ad = Autodiff<NdArray>;

/// burn-collective keeps one local server per backend and process: the tests of one binary
/// take turns.
static TURN: Mutex<()> = Mutex::new(());

/// Waits for this test's turn and starts from a fresh collective server.
pub fn turn() -> MutexGuard<'static, ()> {
    let guard = TURN.lock().unwrap_or_else(|e| e.into_inner());
    burn_collective::reset_collective::<NdArray>();
    guard
}

/// Runs `body` on `world` peers (threads), each with its registered [`PeerGroup`], and
/// unregisters them; returns the results by rank.
pub fn run_peers<R: Send + 'static>(
    world: usize,
    timeout: Duration,
    body: impl Fn(PeerGroup) -> R + Send + Sync + 'static,
) -> Vec<R> {
    run(world, timeout, true, body)
}

/// [`run_peers`] for runs that break the group (a timeout resets burn-collective's server, so
/// unregistering afterwards fails): the peers do not unregister.
pub fn run_broken_peers<R: Send + 'static>(
    world: usize,
    timeout: Duration,
    body: impl Fn(PeerGroup) -> R + Send + Sync + 'static,
) -> Vec<R> {
    run(world, timeout, false, body)
}

fn run<R: Send + 'static>(
    world: usize,
    timeout: Duration,
    finish: bool,
    body: impl Fn(PeerGroup) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let body = Arc::new(body);
    let handles: Vec<_> = (0..world)
        .map(|rank| {
            let body = body.clone();
            std::thread::spawn(move || {
                let config = PeerGroupConfig::threads(rank, world).with_timeout(timeout);
                let group = PeerGroup::register::<NdArray>(config, &Default::default())
                    .unwrap_or_else(|e| panic!("register peer {rank}: {e}"));
                let out = body(group.clone());
                if finish {
                    group
                        .finish()
                        .unwrap_or_else(|e| panic!("finish peer {rank}: {e}"));
                }
                out
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("peer thread panicked"))
        .collect()
}

/// `len` deterministic values in [-1, 1) (a 64-bit LCG).
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `len` labels in `0..classes`.
pub fn labels(len: usize, classes: i64, seed: u64) -> Vec<i64> {
    values(len, seed)
        .into_iter()
        .map(|v| (((v + 1.0) * 0.5 * classes as f32) as i64).min(classes - 1))
        .collect()
}

/// Asserts `|a - b| <= rel * max(|a|, |b|)` element-wise, with a floor of 10% of the largest
/// magnitude of `b`: entries ten times smaller than the largest are held to `rel` of that floor.
/// The peers sum the same `f32` terms in another order than one device (each peer's gradient
/// reaches its rows as query and as reference rows), which moves every entry by a few `1e-6`
/// of the largest one (seen: 4.4e-6 on ContrastiveLoss's distance-matrix gradient).
pub fn assert_close(what: &str, a: &[f32], b: &[f32], rel: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let tol = rel * x.abs().max(y.abs()).max(scale * 1e-1);
        assert!(
            (x - y).abs() <= tol,
            "{what}[{i}]: {x} vs {y} (tolerance {tol})"
        );
    }
}
