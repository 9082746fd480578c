//! [`PeerGroup`]: this peer's membership in a burn-collective group, with timeouts.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use burn::backend::Autodiff;
use burn::tensor::{Tensor, TensorData, TensorPrimitive, backend::Backend};
use burn_collective::{
    CollectiveConfig, CollectiveError, PeerId, ReduceOperation, all_reduce, finish_collective,
    register, reset_collective,
};
use burn_communication::Address;

use crate::DistributedError;

/// How long a collective operation waits for the other peers by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the peers of other processes (nodes) are found: burn-collective's global level.
///
/// Every process of the run passes the same `num_nodes` and `orchestrator`, its own
/// `node_address` and `data_service_port`; the global orchestrator is a separate process
/// ([`start_global_orchestrator`](crate::start_global_orchestrator)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Number of processes (nodes) in the run.
    pub num_nodes: u32,
    /// The orchestrator's address, `ws://host:port`.
    pub orchestrator: String,
    /// This process's address as the others reach it, `ws://host:port`, where `port` is
    /// `data_service_port`.
    pub node_address: String,
    /// The port on which this process serves its tensors to the other processes.
    pub data_service_port: u16,
}

/// Configuration of one peer ([`PeerGroup::register`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerGroupConfig {
    /// This peer's rank in `0..world_size` (unique across all processes). The gathered batch
    /// lists the peers' rows by rank (this peer's own rows first, as PML does).
    pub rank: usize,
    /// The total number of peers, over all processes.
    pub world_size: usize,
    /// The number of peers (threads) in this process; `world_size` when there is one process.
    pub local_peers: usize,
    /// How long any collective operation waits for the other peers before failing with
    /// [`DistributedError::Timeout`].
    pub timeout: Duration,
    /// The global (multi-process) level; `None` when every peer is a thread of this process.
    pub global: Option<GlobalConfig>,
}

impl PeerGroupConfig {
    /// Peer `rank` of `world_size` threads in this process, with [`DEFAULT_TIMEOUT`].
    pub fn threads(rank: usize, world_size: usize) -> Self {
        Self {
            rank,
            world_size,
            local_peers: world_size,
            timeout: DEFAULT_TIMEOUT,
            global: None,
        }
    }

    /// Peer `rank` of a run with one peer per process (`global.num_nodes` processes), with
    /// [`DEFAULT_TIMEOUT`].
    pub fn process(rank: usize, global: GlobalConfig) -> Self {
        Self {
            rank,
            world_size: global.num_nodes as usize,
            local_peers: 1,
            timeout: DEFAULT_TIMEOUT,
            global: Some(global),
        }
    }

    /// The same with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds the global (multi-process) level.
    pub fn with_global(mut self, global: GlobalConfig) -> Self {
        self.global = Some(global);
        self
    }

    fn validate(&self) -> Result<CollectiveConfig, DistributedError> {
        fn bad<T>(argument: &str, value: String, reason: &str) -> Result<T, DistributedError> {
            Err(pml_core::PmlError::invalid_argument(argument, value, reason).into())
        }
        if self.world_size == 0 {
            return bad(
                "world_size",
                "0".into(),
                "PeerGroupConfig: at least one peer",
            );
        }
        if self.rank >= self.world_size {
            return bad(
                "rank",
                self.rank.to_string(),
                &format!(
                    "PeerGroupConfig: must be below world_size = {}",
                    self.world_size
                ),
            );
        }
        if self.local_peers == 0 || self.local_peers > self.world_size {
            return bad(
                "local_peers",
                self.local_peers.to_string(),
                &format!(
                    "PeerGroupConfig: must be in 1..={} (world_size)",
                    self.world_size
                ),
            );
        }
        if self.timeout.is_zero() {
            return bad("timeout", "0s".into(), "PeerGroupConfig: must be positive");
        }
        let config = CollectiveConfig::default().with_num_devices(self.local_peers);
        match &self.global {
            None if self.local_peers != self.world_size => bad(
                "local_peers",
                self.local_peers.to_string(),
                &format!(
                    "PeerGroupConfig: without a global config every peer is local, so it must equal world_size = {}",
                    self.world_size
                ),
            ),
            None => Ok(config),
            Some(g) => {
                let address = |argument: &str, s: &str| -> Result<Address, DistributedError> {
                    if !s.starts_with("ws://") {
                        return bad(argument, s.to_string(), "expected ws://host:port");
                    }
                    Address::from_str(s).or_else(|e| bad(argument, s.to_string(), &e))
                };
                if g.num_nodes == 0 {
                    return bad("num_nodes", "0".into(), "GlobalConfig: at least one node");
                }
                Ok(config
                    .with_num_nodes(g.num_nodes)
                    .with_global_address(address("orchestrator", &g.orchestrator)?)
                    .with_node_address(address("node_address", &g.node_address)?)
                    .with_data_service_port(g.data_service_port))
            }
        }
    }
}

/// Why a type-erased all-reduce did not go through.
enum Attempt {
    /// The tensor's backend is neither the collective's backend nor its autodiff wrapper.
    Unsupported(Box<dyn Any + Send>),
    Failed(DistributedError),
}

/// The collective operations of one backend, behind a backend-free interface.
trait Transport: Send + Sync {
    /// Sums a `Tensor<_, 1>` over the peers when its backend is the collective's own (or its
    /// autodiff wrapper, through the inner tensor), without leaving the device.
    fn try_all_reduce(&self, tensor: Box<dyn Any + Send>) -> Result<Box<dyn Any + Send>, Attempt>;
    /// Sums host data over the peers.
    fn all_reduce_data(&self, data: TensorData) -> Result<TensorData, DistributedError>;
    /// Unregisters the peer.
    fn finish(&self) -> Result<(), DistributedError>;
}

/// burn-collective on backend `C`.
struct Collective<C: Backend> {
    rank: usize,
    world_size: usize,
    timeout: Duration,
    device: C::Device,
    backend: PhantomData<fn() -> C>,
}

/// Runs a blocking burn-collective call on a helper thread and waits at most `timeout`. On a
/// timeout the local collective server of `C` is reset, which releases the peers of this
/// process that wait on the same operation (they fail instead of hanging).
fn blocking<C: Backend, T: Send + 'static>(
    operation: &str,
    rank: usize,
    world_size: usize,
    timeout: Duration,
    call: impl FnOnce() -> Result<T, CollectiveError> + Send + 'static,
) -> Result<T, DistributedError> {
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name(format!("pml-collective-{operation}-{rank}"))
        .spawn(move || {
            let _ = tx.send(call());
        })
        .map_err(|e| DistributedError::Collective {
            operation: operation.into(),
            peer: rank,
            reason: format!("cannot spawn the waiting thread: {e}"),
        })?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(DistributedError::Collective {
            operation: operation.into(),
            peer: rank,
            reason: match e {
                CollectiveError::LocalServerMissing => {
                    "the operation was aborted (another peer timed out or failed, or sent a tensor of another shape)"
                        .into()
                }
                other => format!("{other:?}"),
            },
        }),
        Err(RecvTimeoutError::Timeout) => {
            reset_collective::<C>();
            Err(DistributedError::Timeout {
                operation: operation.into(),
                peer: rank,
                world_size,
                timeout,
            })
        }
        Err(RecvTimeoutError::Disconnected) => Err(DistributedError::Collective {
            operation: operation.into(),
            peer: rank,
            reason: "burn-collective panicked".into(),
        }),
    }
}

impl<C: Backend> Collective<C> {
    fn reduce(&self, tensor: Tensor<C, 1>) -> Result<Tensor<C, 1>, DistributedError> {
        let id = PeerId::from(self.rank);
        let primitive = tensor.into_primitive().tensor();
        let out = blocking::<C, _>(
            "all_reduce",
            self.rank,
            self.world_size,
            self.timeout,
            move || all_reduce::<C>(id, primitive, ReduceOperation::Sum),
        )?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
    }
}

impl<C: Backend> Transport for Collective<C> {
    fn try_all_reduce(&self, tensor: Box<dyn Any + Send>) -> Result<Box<dyn Any + Send>, Attempt> {
        let tensor = match tensor.downcast::<Tensor<C, 1>>() {
            Ok(t) => {
                return self
                    .reduce(*t)
                    .map(|t| Box::new(t) as Box<dyn Any + Send>)
                    .map_err(Attempt::Failed);
            }
            Err(other) => other,
        };
        match tensor.downcast::<Tensor<Autodiff<C>, 1>>() {
            Ok(t) => self
                .reduce(t.inner())
                .map(|t| Box::new(Tensor::<Autodiff<C>, 1>::from_inner(t)) as Box<dyn Any + Send>)
                .map_err(Attempt::Failed),
            Err(other) => Err(Attempt::Unsupported(other)),
        }
    }

    fn all_reduce_data(&self, data: TensorData) -> Result<TensorData, DistributedError> {
        let tensor = Tensor::<C, 1>::from_data(data, &self.device);
        Ok(self.reduce(tensor)?.into_data())
    }

    fn finish(&self) -> Result<(), DistributedError> {
        let id = PeerId::from(self.rank);
        blocking::<C, _>(
            "finish",
            self.rank,
            self.world_size,
            self.timeout,
            move || finish_collective::<C>(id),
        )
    }
}

/// The one-peer group: an all-reduce over one peer is the identity.
struct Alone;

impl Transport for Alone {
    fn try_all_reduce(&self, tensor: Box<dyn Any + Send>) -> Result<Box<dyn Any + Send>, Attempt> {
        Ok(tensor)
    }

    fn all_reduce_data(&self, data: TensorData) -> Result<TensorData, DistributedError> {
        Ok(data)
    }

    fn finish(&self) -> Result<(), DistributedError> {
        Ok(())
    }
}

/// This peer's handle on a group of peers that run the same program in lock-step (PML's
/// `torch.distributed` process group): threads of one process, or processes on several
/// machines, through burn-collective.
///
/// Built once per peer with [`register`](Self::register) (which waits until every peer has
/// registered), cloned into the distributed wrappers and the data-parallel trainer.
/// [`all_reduce_sum`](Self::all_reduce_sum) accepts tensors of the collective's backend `C` and
/// of `Autodiff<C>` (through the inner tensor, on the device); tensors of any other backend go
/// through host memory. Every operation waits at most the configured timeout.
///
/// Every peer must call the same collective operations in the same order with tensors of the
/// same shapes, as with any all-reduce.
#[derive(Clone)]
pub struct PeerGroup {
    rank: usize,
    world_size: usize,
    timeout: Duration,
    transport: Arc<dyn Transport>,
}

impl fmt::Debug for PeerGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerGroup")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PeerGroup {
    /// A group of one peer (rank 0 of 1): the distributed wrappers then return the wrapped
    /// loss and miner as they are, as PML's do outside `torch.distributed`.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            timeout: DEFAULT_TIMEOUT,
            transport: Arc::new(Alone),
        }
    }

    /// Registers this peer with burn-collective on backend `C` (use the inner backend, e.g.
    /// `NdArray`, also when training with `Autodiff<NdArray>`) and waits until all peers of this
    /// process, and with a global config all processes, have registered.
    ///
    /// # Errors
    /// An invalid config (naming the argument and its value), burn-collective refusing the
    /// registration (a rank registered twice, peers with different configs), or
    /// [`DistributedError::Timeout`] when the other peers do not register in time.
    pub fn register<C: Backend>(
        config: PeerGroupConfig,
        device: &C::Device,
    ) -> Result<Self, DistributedError> {
        let collective = config.validate()?;
        let id = PeerId::from(config.rank);
        let d = device.clone();
        blocking::<C, _>(
            "register",
            config.rank,
            config.world_size,
            config.timeout,
            move || register::<C>(id, d, collective),
        )?;
        Ok(Self {
            rank: config.rank,
            world_size: config.world_size,
            timeout: config.timeout,
            transport: Arc::new(Collective::<C> {
                rank: config.rank,
                world_size: config.world_size,
                timeout: config.timeout,
                device: device.clone(),
                backend: PhantomData,
            }),
        })
    }

    /// This peer's rank, in `0..world_size`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of peers.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The timeout of each collective operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The element-wise sum of `tensor` over all peers, detached from any autodiff graph.
    ///
    /// # Shapes
    /// Any shape, the same on every peer; the output has the input's shape.
    ///
    /// # Errors
    /// [`DistributedError::Timeout`] when a peer does not take part in time;
    /// [`DistributedError::Collective`] when burn-collective aborts (for example peers
    /// passing different shapes).
    pub fn all_reduce_sum<B: Backend, const D: usize>(
        &self,
        tensor: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, DistributedError> {
        let shape = tensor.dims();
        let numel: usize = shape.iter().product();
        if self.world_size == 1 || numel == 0 {
            return Ok(tensor.detach());
        }
        let flat: Tensor<B, 1> = tensor.detach().reshape([numel]);
        let summed = match self.transport.try_all_reduce(Box::new(flat)) {
            Ok(out) => *out
                .downcast::<Tensor<B, 1>>()
                .expect("the transport returns the type it was given"),
            Err(Attempt::Failed(e)) => return Err(e),
            Err(Attempt::Unsupported(back)) => {
                let flat = *back
                    .downcast::<Tensor<B, 1>>()
                    .expect("the transport returns the type it was given");
                let device = flat.device();
                let data = self.transport.all_reduce_data(flat.into_data())?;
                Tensor::<B, 1>::from_data(data, &device)
            }
        };
        Ok(summed.reshape(shape))
    }

    /// Unregisters this peer from burn-collective (every peer calls it at the end of the run).
    ///
    /// # Errors
    /// As [`all_reduce_sum`](Self::all_reduce_sum).
    pub fn finish(&self) -> Result<(), DistributedError> {
        self.transport.finish()
    }
}
