//! Distributed metric learning for **pml-rs** on Burn's own distributed engine,
//! [burn-collective](https://docs.rs/burn-collective): PML's `utils/distributed.py`.
//!
//! Data-parallel training splits the global batch over peers (threads of one process, one per
//! device, or processes on several machines). Plain data parallelism averages gradients, but a
//! metric loss on each peer would only see that peer's batch; the wrappers here gather every
//! peer's embeddings so that each anchor meets positives and negatives of the whole batch.
//!
//! | PML | here |
//! |---|---|
//! | `torch.distributed` process group | [`PeerGroup`] (burn-collective, with timeouts) |
//! | `all_gather_embeddings_and_labels` | [`all_gather`] (composed from all-reduce) |
//! | `DistributedLossWrapper(loss, efficient)` | [`DistributedLossWrapper`] |
//! | `DistributedMinerWrapper(miner, efficient)` | [`DistributedMinerWrapper`] |
//! | `DistributedDataParallel` | [`DataParallel`] (gradient all-reduce over burn-collective) |
//!
//! Two peers as threads, on the CPU:
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::{Int, Tensor};
//! use pml_core::{LossInput, MetricLoss};
//! use pml_distributed::{DistributedLossWrapper, PeerGroup, PeerGroupConfig};
//! use pml_losses::ContrastiveLossConfig;
//!
//! let handles: Vec<_> = (0..2)
//!     .map(|rank| {
//!         std::thread::spawn(move || {
//!             let device = Default::default();
//!             let group = PeerGroup::register::<NdArray>(PeerGroupConfig::threads(rank, 2), &device)
//!                 .unwrap();
//!             let loss = DistributedLossWrapper::<NdArray, _>::new(
//!                 ContrastiveLossConfig::new().init(), false, group.clone()).unwrap();
//!             let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
//!             let y = Tensor::<NdArray, 1, Int>::from_ints([0, 1], &device);
//!             let value = loss.forward(LossInput::new(x, y)).into_scalar();
//!             group.finish().unwrap();
//!             value
//!         })
//!     })
//!     .collect();
//! let values: Vec<f32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
//! assert_eq!(values[0], values[1]); // the same global loss on both peers
//! ```
#![warn(missing_docs)]

mod data_parallel;
mod distributed_loss_wrapper;
mod distributed_miner_wrapper;
mod error;
mod gather;
mod peer_group;
mod tuples;

pub use data_parallel::DataParallel;
pub use distributed_loss_wrapper::DistributedLossWrapper;
pub use distributed_miner_wrapper::DistributedMinerWrapper;
pub use error::DistributedError;
pub use gather::{Gathered, MAX_ABS_LABEL, all_gather};
pub use peer_group::{DEFAULT_TIMEOUT, GlobalConfig, PeerGroup, PeerGroupConfig};

/// burn-collective's global orchestrator, for runs over several processes: run
/// `start_global_orchestrator(port).await` in one process that every peer's
/// [`GlobalConfig::orchestrator`] points to.
pub use burn_collective::start_global_orchestrator;
