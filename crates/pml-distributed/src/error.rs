//! [`DistributedError`]: what can go wrong between peers.

use std::time::Duration;

use pml_core::PmlError;
use thiserror::Error;

/// Errors of the collective operations and of the distributed wrappers.
///
/// Every variant names the peer that saw it, so that the logs of a multi-process run say which
/// process failed and why.
#[derive(Debug, Error)]
pub enum DistributedError {
    /// A collective operation (register, all-reduce) did not complete in time: usually a peer
    /// that never joined, or that stopped calling the same sequence of operations.
    #[error(
        "peer {peer} of {world_size}: `{operation}` did not complete within timeout = {timeout:?}; \
         a peer never joined or stopped calling the same collective operations"
    )]
    Timeout {
        /// The operation that timed out.
        operation: String,
        /// The rank of the peer that waited.
        peer: usize,
        /// The number of peers expected.
        world_size: usize,
        /// How long it waited.
        timeout: Duration,
    },
    /// burn-collective refused or aborted an operation.
    #[error("peer {peer}: `{operation}` failed in burn-collective: {reason}")]
    Collective {
        /// The operation that failed.
        operation: String,
        /// The rank of the peer that saw the failure.
        peer: usize,
        /// burn-collective's error, formatted.
        reason: String,
    },
    /// The peers disagree on something they must share (embedding width, presence of labels).
    #[error("peer {peer}: peers disagree on `{argument}`: {details}")]
    Mismatch {
        /// The argument the peers disagree on (`embeddings`, `labels`, ...).
        argument: String,
        /// The rank of the peer that detected it (every peer reports the same mismatch).
        peer: usize,
        /// The value of every peer.
        details: String,
    },
    /// An invalid argument or input, as in the rest of pml-rs.
    #[error(transparent)]
    Pml(#[from] PmlError),
}

impl From<DistributedError> for PmlError {
    /// Distributed failures become [`PmlError::InvalidArgument`] naming what went wrong
    /// (`timeout`, the mismatched argument, or `peers` for burn-collective's own errors).
    fn from(e: DistributedError) -> Self {
        let message = e.to_string();
        match e {
            DistributedError::Pml(inner) => inner,
            DistributedError::Timeout { timeout, .. } => {
                PmlError::invalid_argument("timeout", format!("{timeout:?}"), message)
            }
            DistributedError::Mismatch { argument, .. } => {
                PmlError::invalid_input(argument, message)
            }
            DistributedError::Collective { peer, .. } => {
                PmlError::invalid_argument("peers", format!("peer {peer}"), message)
            }
        }
    }
}
