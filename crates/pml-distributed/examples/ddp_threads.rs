//! Data-parallel metric learning with 2 peers as threads of one process, on the CPU.
//!
//! ```text
//! cargo run -p pml-distributed --example ddp_threads [-- PEERS]
//! ```
//!
//! Each peer embeds its half of every global batch; `DistributedLossWrapper` gathers both
//! halves so that TripletMarginLoss (mined with MultiSimilarityMiner) sees the whole batch;
//! `DataParallel` averages the gradients with burn-collective's all-reduce. The replicas end
//! identical.

mod common;

use std::time::Duration;

use burn::backend::NdArray;
use pml_distributed::{PeerGroup, PeerGroupConfig};

fn main() {
    let peers: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("PEERS: a number of peers"))
        .unwrap_or(2);
    let handles: Vec<_> = (0..peers)
        .map(|rank| {
            std::thread::spawn(move || {
                let config =
                    PeerGroupConfig::threads(rank, peers).with_timeout(Duration::from_secs(60));
                let group = PeerGroup::register::<NdArray>(config, &Default::default())?;
                let net = common::train(group.clone())?;
                group.finish()?;
                Ok::<_, pml_distributed::DistributedError>(common::checksum(&net))
            })
        })
        .collect();
    let sums: Vec<f64> = handles
        .into_iter()
        .enumerate()
        .map(|(rank, h)| {
            h.join()
                .expect("peer thread panicked")
                .unwrap_or_else(|e| panic!("peer {rank}: {e}"))
        })
        .collect();
    println!("parameter checksum per peer: {sums:?}");
    assert!(
        sums.iter().all(|s| *s == sums[0]),
        "the replicas differ: {sums:?}"
    );
    println!("replicas identical");
}
