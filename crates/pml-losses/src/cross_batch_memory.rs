use std::sync::Mutex;

use burn::{
    config::Config,
    module::{
        AutodiffModule, Content, Devices, EmptyRecord, Module, ModuleDisplay, ModuleDisplayDefault,
        ModuleMapper, ModuleVisitor,
    },
    tensor::{
        Bool, Int, Tensor,
        backend::{AutodiffBackend, Backend},
    },
};
use pml_core::{
    IndicesTuple, LossInput, LossTerms, MetricLoss, Miner, PmlError, Reference,
    labels::{all_pairs, pairs_to_triplets},
    tensor::constant,
};
use pml_miners::{AnyMiner, MinerConfig};

use crate::{BaseLoss, LossConfig};

/// The losses PML's `CrossBatchMemory` accepts.
const SUPPORTED: [&str; 14] = [
    "AngularLoss",
    "CircleLoss",
    "ContrastiveLoss",
    "GeneralizedLiftedStructureLoss",
    "IntraPairVarianceLoss",
    "LiftedStructureLoss",
    "MarginLoss",
    "MultiSimilarityLoss",
    "NCALoss",
    "NTXentLoss",
    "SignalToNoiseRatioContrastiveLoss",
    "SupConLoss",
    "TripletMarginLoss",
    "TupletMarginLoss",
];

/// Configuration of [`CrossBatchMemory`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct CrossBatchMemoryConfig {
    /// The wrapped loss (one of PML's supported list).
    pub loss: Box<LossConfig>,
    /// Width of the embeddings kept in memory.
    pub embedding_size: usize,
    /// Number of embeddings kept in memory.
    #[config(default = 1024)]
    pub memory_size: usize,
    /// A miner run on the batch against the memory; `None` uses every pair.
    pub miner: Option<MinerConfig>,
}

impl CrossBatchMemoryConfig {
    /// Builds the wrapper on `device`, refusing losses PML does not support in it.
    pub fn try_init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<CrossBatchMemory<B>, PmlError> {
        let name = self.loss.pml_name();
        if !SUPPORTED.contains(&name) {
            return Err(PmlError::Unsupported(format!(
                "CrossBatchMemory not supported for {name}"
            )));
        }
        for (arg, v) in [
            ("embedding_size", self.embedding_size),
            ("memory_size", self.memory_size),
        ] {
            if v == 0 {
                return Err(PmlError::invalid_argument(
                    arg,
                    v,
                    "CrossBatchMemory: must be positive",
                ));
            }
        }
        Ok(CrossBatchMemory {
            loss: vec![self.loss.try_init_base(device)?],
            embedding_size: self.embedding_size,
            memory_size: self.memory_size,
            miner: self.miner.as_ref().map(MinerConfig::try_init).transpose()?,
            queue: MemoryQueue::default(),
        })
    }

    /// Builds the wrapper on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> CrossBatchMemory<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The ring buffer of past embeddings and labels.
#[derive(Debug)]
struct Queue<B: Backend> {
    embeddings: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    /// Next slot to write.
    idx: usize,
    filled: bool,
}

/// The queue behind a lock, so that `forward(&self)` can enqueue.
#[derive(Debug, Default)]
struct MemoryQueue<B: Backend>(Mutex<Option<Queue<B>>>);

impl<B: Backend> Clone for MemoryQueue<B> {
    fn clone(&self) -> Self {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Self(Mutex::new(q.as_ref().map(|q| Queue {
            embeddings: q.embeddings.clone(),
            labels: q.labels.clone(),
            idx: q.idx,
            filled: q.filled,
        })))
    }
}

/// The memory is training state, not a parameter: it is not saved in records, and moving or
/// forking the module (or taking its `valid()` copy) starts from an empty memory.
impl<B: Backend> Module<B> for MemoryQueue<B> {
    type Record = EmptyRecord;

    fn visit<V: ModuleVisitor<B>>(&self, _visitor: &mut V) {}

    fn map<M: ModuleMapper<B>>(self, _mapper: &mut M) -> Self {
        self
    }

    fn load_record(self, _record: Self::Record) -> Self {
        self
    }

    fn into_record(self) -> Self::Record {
        EmptyRecord::new()
    }

    fn to_device(self, _device: &B::Device) -> Self {
        Self::default()
    }

    fn fork(self, _device: &B::Device) -> Self {
        Self::default()
    }

    fn collect_devices(&self, devices: Devices<B>) -> Devices<B> {
        devices
    }
}

impl<B: AutodiffBackend> AutodiffModule<B> for MemoryQueue<B> {
    type InnerModule = MemoryQueue<B::InnerBackend>;

    fn valid(&self) -> Self::InnerModule {
        MemoryQueue::default()
    }

    fn from_inner(_module: Self::InnerModule) -> Self {
        Self::default()
    }
}

impl<B: Backend> ModuleDisplayDefault for MemoryQueue<B> {
    fn content(&self, content: Content) -> Option<Content> {
        content.add_formatted(&"memory queue").optional()
    }
}

impl<B: Backend> ModuleDisplay for MemoryQueue<B> {}

/// Cross-batch memory (Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020;
/// PML's `CrossBatchMemory`): keeps the last `memory_size` embeddings (detached) and labels in a
/// ring buffer; each call first enqueues the batch, then computes the wrapped loss of the batch
/// against the memory (every pair of the batch with the memory, or the optional miner's tuples,
/// minus each row's comparison with its own memory slot).
///
/// With an enqueue mask ([`forward_with_enqueue_mask`](Self::forward_with_enqueue_mask),
/// MoCo-style), the masked rows only go to memory and the other rows are the anchors.
/// The memory is not part of the module's record (it is rebuilt by training);
/// [`reset_queue`](Self::reset_queue) empties it.
///
/// # Shapes
/// - embeddings `[n, embedding_size]` with `n ≤ memory_size`, labels `[n]`
/// - output `[1]`
///
/// # Panics
/// Without labels, with embeddings of another width than `embedding_size`, or a batch larger
/// than the memory.
#[derive(Module, Debug)]
pub struct CrossBatchMemory<B: Backend> {
    /// The wrapped loss, as a one-element `Vec` (see [`crate::SelfSupervisedLoss`]).
    loss: Vec<BaseLoss<B>>,
    embedding_size: usize,
    memory_size: usize,
    miner: Option<AnyMiner>,
    #[module(skip)]
    queue: MemoryQueue<B>,
}

impl<B: Backend> CrossBatchMemory<B> {
    /// Empties the memory.
    pub fn reset_queue(&self) {
        *self.queue.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The loss where only the rows outside `enqueue_mask` are anchors and only the rows in it
    /// go to memory (no self-comparisons to remove, as in PML).
    ///
    /// # Panics
    /// If `enqueue_mask` is not as long as the batch, or an indices tuple is also given (PML:
    /// mutually exclusive).
    pub fn forward_with_enqueue_mask(
        &self,
        input: LossInput<B>,
        enqueue_mask: Tensor<B, 1, Bool>,
    ) -> Tensor<B, 1> {
        assert!(
            input.indices_tuple.is_none(),
            "CrossBatchMemory: indices_tuple and enqueue_mask are mutually exclusive"
        );
        let n = input.embeddings.dims()[0];
        assert_eq!(
            enqueue_mask.dims()[0],
            n,
            "CrossBatchMemory: enqueue_mask has length {} but the batch has {n} rows",
            enqueue_mask.dims()[0]
        );
        let (emb, labels) = self.batch(&input);
        let rows = |mask: Tensor<B, 1, Bool>| mask.argwhere().reshape([-1]);
        let queued = rows(enqueue_mask.clone());
        let anchors = rows(enqueue_mask.bool_not());
        self.enqueue(
            emb.clone().select(0, queued.clone()),
            labels.clone().select(0, queued),
        );
        let inner = self.memory_input(
            emb.select(0, anchors.clone()),
            labels.select(0, anchors),
            None,
        );
        self.loss[0].forward(inner)
    }

    fn batch(&self, input: &LossInput<B>) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
        input.validate();
        let [n, d] = input.embeddings.dims();
        assert_eq!(
            d, self.embedding_size,
            "CrossBatchMemory: embeddings shape [{n}, {d}], expected width embedding_size = {}",
            self.embedding_size
        );
        let labels = input.labels.clone().unwrap_or_else(|| {
            panic!("CrossBatchMemory needs labels (embeddings shape [{n}, {d}])")
        });
        (input.embeddings.clone(), labels)
    }

    /// Writes a batch into the ring buffer; returns the slot of its first row.
    fn enqueue(&self, emb: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> usize {
        let [bs, d] = emb.dims();
        let m = self.memory_size;
        assert!(
            bs <= m,
            "CrossBatchMemory: a batch of {bs} rows does not fit a memory of {m}"
        );
        let mut guard = self.queue.0.lock().unwrap_or_else(|e| e.into_inner());
        let q = guard.get_or_insert_with(|| Queue {
            embeddings: Tensor::zeros([m, d], (&emb.device(), emb.dtype())),
            labels: Tensor::zeros([m], &labels.device()),
            idx: 0,
            filled: false,
        });
        let start = q.idx;
        // The memory holds constants.
        let emb = constant(emb);
        // At most two contiguous chunks: start..m, then 0..rest.
        let first = bs.min(m - start);
        q.embeddings = q.embeddings.clone().slice_assign(
            [start..start + first, 0..d],
            emb.clone().slice([0..first, 0..d]),
        );
        q.labels = q
            .labels
            .clone()
            .slice_assign(start..start + first, labels.clone().slice(0..first));
        if first < bs {
            let rest = bs - first;
            q.embeddings = q
                .embeddings
                .clone()
                .slice_assign([0..rest, 0..d], emb.slice([first..bs, 0..d]));
            q.labels = q
                .labels
                .clone()
                .slice_assign(0..rest, labels.slice(first..bs));
        }
        let prev = q.idx;
        q.idx = (q.idx + bs) % m;
        if !q.filled && q.idx <= prev {
            q.filled = true;
        }
        start
    }

    /// The loss input of anchors against the memory, with the given tuple, the miner's, or
    /// all pairs.
    fn memory_input(
        &self,
        emb: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        tuple: Option<IndicesTuple<B>>,
    ) -> LossInput<B> {
        let guard = self.queue.0.lock().unwrap_or_else(|e| e.into_inner());
        let q = guard
            .as_ref()
            .expect("the memory holds the batch just enqueued");
        let len = if q.filled { self.memory_size } else { q.idx };
        let d = self.embedding_size;
        let mem_emb = q.embeddings.clone().slice([0..len, 0..d]);
        let mem_labels = q.labels.clone().slice(0..len);
        let tuple = tuple.unwrap_or_else(|| match &self.miner {
            Some(miner) => miner.mine(
                emb.clone(),
                labels.clone(),
                Some(Reference {
                    embeddings: mem_emb.clone(),
                    labels: Some(mem_labels.clone()),
                }),
            ),
            None => all_pairs(&labels, Some(&mem_labels)),
        });
        LossInput::new(emb, labels)
            .with_indices(tuple)
            .with_reference(mem_emb, mem_labels)
    }

    /// Drops each anchor's comparison with its own memory slot: row `r` of the batch was
    /// written to slot `(start + r) mod memory_size`.
    fn remove_self_comparisons(
        &self,
        tuple: IndicesTuple<B>,
        start: usize,
        bs: usize,
    ) -> IndicesTuple<B> {
        let m = self.memory_size as i64;
        tuple.retain_positives(|a, p| {
            let row = p
                .clone()
                .sub_scalar(start as i64)
                .add_scalar(m)
                .remainder_scalar(m);
            let own = row
                .clone()
                .lower_elem(bs as i64)
                .bool_and(row.equal(a.clone()));
            own.bool_not()
        })
    }

    /// The inner loss input for a call without enqueue mask (enqueues the batch).
    fn call_input(&self, input: &LossInput<B>) -> LossInput<B> {
        let (emb, labels) = self.batch(input);
        let bs = emb.dims()[0];
        let start = self.enqueue(emb.clone(), labels.clone());
        let mined = self.memory_input(emb.clone(), labels.clone(), None);
        let tuple = self.remove_self_comparisons(
            mined.indices_tuple.clone().expect("all pairs"),
            start,
            bs,
        );
        let tuple = match &input.indices_tuple {
            None => tuple,
            Some(given) => concatenate(tuple, given.clone()),
        };
        LossInput {
            indices_tuple: Some(tuple),
            ..mined
        }
    }
}

/// Appends `given` to `mined`, converted to the same kind (PML's `concatenate_indices_tuples`).
fn concatenate<B: Backend>(mined: IndicesTuple<B>, given: IndicesTuple<B>) -> IndicesTuple<B> {
    let cat = |a: Tensor<B, 1, Int>, b: Tensor<B, 1, Int>| Tensor::cat(vec![a, b], 0);
    match (mined, given) {
        (IndicesTuple::Pairs { a1, p, a2, n }, given) => {
            let (ga1, gp, ga2, gn) = match given {
                IndicesTuple::Pairs { a1, p, a2, n } => (a1, p, a2, n),
                IndicesTuple::Triplets { a, p, n } => (a.clone(), p, a, n),
            };
            IndicesTuple::pairs(cat(a1, ga1), cat(p, gp), cat(a2, ga2), cat(n, gn))
        }
        (IndicesTuple::Triplets { a, p, n }, given) => {
            let given = match given {
                IndicesTuple::Pairs { a1, p, a2, n } => pairs_to_triplets(a1, p, a2, n),
                t => t,
            };
            let IndicesTuple::Triplets {
                a: ga,
                p: gp,
                n: gn,
            } = given
            else {
                unreachable!("converted to triplets above")
            };
            IndicesTuple::triplets(cat(a, ga), cat(p, gp), cat(n, gn))
        }
    }
}

impl<B: Backend> MetricLoss<B> for CrossBatchMemory<B> {
    /// Enqueues the batch, then returns the wrapped loss's terms against the memory.
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        self.loss[0].forward_terms(&self.call_input(input))
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        // Reducers only look at the anchors (the batch) and their labels.
        self.loss[0].reduce(terms, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContrastiveLossConfig;
    use burn::backend::NdArray;

    fn cbm(memory_size: usize) -> CrossBatchMemory<NdArray> {
        let inner = LossConfig::Contrastive(ContrastiveLossConfig::new());
        CrossBatchMemoryConfig::new(Box::new(inner), 2)
            .with_memory_size(memory_size)
            .init(&Default::default())
    }

    #[test]
    fn first_call_equals_the_loss_on_the_batch_itself() {
        // The memory then holds exactly the batch, and self-comparisons are removed: the same
        // pairs as the plain loss.
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::from_floats(
            [[1.0, 0.0], [0.8, 0.3], [0.0, 1.0], [0.2, 0.9]],
            &device,
        );
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1, 1], &device);
        let input = LossInput::new(x, labels);
        let got = cbm(8).forward(input.clone()).into_scalar();
        let want = ContrastiveLossConfig::new()
            .init()
            .forward(input)
            .into_scalar();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn ring_buffer_wraps_and_resets() {
        let device = Default::default();
        let loss = cbm(3);
        let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 1], &device);
        for expected_idx in [2, 1, 0] {
            loss.forward(LossInput::new(x.clone(), labels.clone()));
            let q = loss.queue.0.lock().unwrap();
            assert_eq!(q.as_ref().unwrap().idx, expected_idx);
        }
        assert!(loss.queue.0.lock().unwrap().as_ref().unwrap().filled);
        loss.reset_queue();
        assert!(loss.queue.0.lock().unwrap().is_none());
    }

    #[test]
    fn refuses_unsupported_losses() {
        let inner = LossConfig::Contrastive(ContrastiveLossConfig::new());
        assert!(
            CrossBatchMemoryConfig::new(Box::new(inner), 0)
                .try_init::<NdArray>(&Default::default())
                .is_err()
        );
    }
}
