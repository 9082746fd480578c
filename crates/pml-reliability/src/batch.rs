//! The bad batches shared by the loss and miner rows: embeddings, labels and an optional
//! reference set, each malformed in one way.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use pml_core::{LossInput, rng::SeededRng, tensor::int_tensor};

use crate::Expect;

/// Width of the embeddings, and the `embedding_size` of the losses that have one.
pub(crate) const WIDTH: usize = 4;
/// Classes of the losses that have `num_classes`: the well-formed labels are below it.
pub(crate) const NUM_CLASSES: usize = 8;
/// The well-formed labels: three classes of two.
const LABELS: [i64; 6] = [0, 0, 1, 1, 2, 2];

/// Reference embeddings and their labels, if any, on a device.
pub(crate) type RefTensors<B> = (Tensor<B, 2>, Option<Tensor<B, 1, Int>>);

/// A reference set (`ref_emb`, `ref_labels`).
#[derive(Clone, Debug)]
pub(crate) struct RefSet {
    pub(crate) rows: usize,
    pub(crate) width: usize,
    pub(crate) values: Vec<f32>,
    pub(crate) labels: Option<Vec<i64>>,
}

/// One malformed batch.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    pub(crate) name: &'static str,
    pub(crate) expect: Expect,
    /// Whether every embedding value is finite.
    pub(crate) finite: bool,
    pub(crate) rows: usize,
    pub(crate) width: usize,
    pub(crate) values: Vec<f32>,
    pub(crate) labels: Option<Vec<i64>>,
    pub(crate) reference: Option<RefSet>,
}

/// `len` seeded values in `[-1, 1)`.
pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
    let rng = SeededRng::new(seed);
    (0..len)
        .map(|_| (rng.uniform() * 2.0 - 1.0) as f32)
        .collect()
}

impl Batch {
    /// The well-formed batch every bad one is derived from.
    fn good(name: &'static str, expect: Expect) -> Self {
        Self {
            name,
            expect,
            finite: true,
            rows: LABELS.len(),
            width: WIDTH,
            values: values(LABELS.len() * WIDTH, 3),
            labels: Some(LABELS.to_vec()),
            reference: None,
        }
    }

    fn rows(mut self, rows: usize) -> Self {
        self.rows = rows;
        self.values = values(rows * self.width, 5);
        self.labels = Some(LABELS.iter().copied().cycle().take(rows).collect());
        self
    }

    fn labels(mut self, labels: Option<Vec<i64>>) -> Self {
        self.labels = labels;
        self
    }

    fn map(mut self, f: impl Fn(usize, f32) -> f32) -> Self {
        self.finite = self
            .values
            .iter()
            .enumerate()
            .all(|(i, &v)| f(i, v).is_finite());
        self.values = self
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| f(i, v))
            .collect();
        self
    }

    fn width(mut self, width: usize) -> Self {
        self.width = width;
        self.values = values(self.rows * width, 7);
        self
    }

    fn reference(mut self, rows: usize, width: usize, labels: Option<Vec<i64>>) -> Self {
        self.reference = Some(RefSet {
            rows,
            width,
            values: values(rows * width, 11),
            labels,
        });
        self
    }

    /// The embeddings on `device`.
    pub(crate) fn embeddings<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(self.values.clone(), [self.rows, self.width]),
            device,
        )
    }

    /// The labels on `device`, if any.
    pub(crate) fn label_tensor<B: Backend>(&self, device: &B::Device) -> Option<Tensor<B, 1, Int>> {
        self.labels.as_ref().map(|l| int_tensor(l, device))
    }

    /// The reference embeddings and labels on `device`, if any.
    pub(crate) fn reference_tensors<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Option<RefTensors<B>> {
        self.reference.as_ref().map(|r| {
            (
                Tensor::from_data(TensorData::new(r.values.clone(), [r.rows, r.width]), device),
                r.labels.as_ref().map(|l| int_tensor(l, device)),
            )
        })
    }

    /// A loss input: the embeddings as a leaf that requires a gradient (returned too), the
    /// labels and the reference as given.
    pub(crate) fn loss_input<B: Backend>(&self, device: &B::Device) -> LossInput<B> {
        let mut input = match self.label_tensor(device) {
            Some(labels) => LossInput::new(self.embeddings(device), labels),
            None => LossInput::unlabeled(self.embeddings(device)),
        };
        if let Some((emb, labels)) = self.reference_tensors(device) {
            input = match labels {
                Some(l) => input.with_reference(emb, l),
                None => input.with_unlabeled_reference(emb),
            };
        }
        input
    }
}

const LABELS_ARG: &[&str] = &["labels"];
/// An empty batch is refused by `LossInput::check_shapes` (and miners may refuse it too).
const EMB_ARG: &[&str] = &["embeddings"];
const REF_LABELS_ARG: &[&str] = &["ref_labels", "ref_emb"];
const REF_EMB_ARG: &[&str] = &["ref_emb"];
const WIDTH_ARGS: &[&str] = &["embedding_size", "embeddings", "width", "descriptors_dim"];

/// The labelled bad batches: data problems and contract violations.
pub(crate) fn labeled_batches() -> Vec<Batch> {
    let data = Expect::Data;
    let n = LABELS.len();
    vec![
        Batch::good("NaN in the embeddings", data).map(|i, v| if i == 5 { f32::NAN } else { v }),
        Batch::good("+inf in the embeddings", data)
            .map(|i, v| if i == 2 { f32::INFINITY } else { v }),
        Batch::good("-inf in the embeddings", data)
            .map(|i, v| if i == 9 { f32::NEG_INFINITY } else { v }),
        Batch::good("an empty batch", Expect::Contract(EMB_ARG)).rows(0),
        Batch::good("a batch of one", data).rows(1),
        Batch::good("a batch of two of one class", data)
            .rows(2)
            .labels(Some(vec![4, 4])),
        Batch::good("one class only (no negatives)", data).labels(Some(vec![1; n])),
        Batch::good("every sample its own class (no positives)", data)
            .labels(Some((0..n as i64).collect())),
        Batch::good("negative labels", data).labels(Some(vec![-1, -1, -7, -7, -3, -3])),
        Batch::good("huge labels", data).labels(Some(vec![
            i64::MAX,
            i64::MAX,
            1 << 40,
            1 << 40,
            9,
            9,
        ])),
        Batch::good("all embeddings equal (ties)", data).map(|i, _| (i % WIDTH) as f32 * 0.5),
        Batch::good("zero embeddings", data).map(|_, _| 0.0),
        Batch::good("large embeddings (1e4)", data).map(|_, v| v * 1e4),
        Batch::good("tiny embeddings (1e-30)", data).map(|_, v| v * 1e-30),
        Batch::good("labels longer than the batch", Expect::Contract(LABELS_ARG))
            .labels(Some(vec![0; n + 1])),
        Batch::good(
            "labels shorter than the batch",
            Expect::Contract(LABELS_ARG),
        )
        .labels(Some(vec![0; n - 2])),
        Batch::good(
            "no labels and no indices_tuple",
            Expect::Contract(LABELS_ARG),
        )
        .labels(None),
        Batch::good(
            "width 5, not embedding_size 4",
            Expect::Contract(WIDTH_ARGS),
        )
        .width(5),
        Batch::good(
            "a reference without labels",
            Expect::Contract(REF_LABELS_ARG),
        )
        .reference(4, WIDTH, None),
        // Losses without reference support refuse any ref_emb (PML: "ref_emb is not supported").
        Batch::good("a reference of one row", Expect::Contract(REF_EMB_ARG)).reference(
            1,
            WIDTH,
            Some(vec![0]),
        ),
        Batch::good("an empty reference", Expect::Contract(REF_EMB_ARG)).reference(
            0,
            WIDTH,
            Some(vec![]),
        ),
        Batch::good(
            "a reference of another width",
            Expect::Contract(REF_EMB_ARG),
        )
        .reference(4, WIDTH + 1, Some(vec![0, 1, 2, 0])),
        Batch::good(
            "ref_labels of the wrong length",
            Expect::Contract(REF_LABELS_ARG),
        )
        .reference(4, WIDTH, Some(vec![0, 1])),
        {
            let mut b =
                Batch::good("NaN in the reference", data).reference(3, WIDTH, Some(vec![0, 1, 2]));
            if let Some(r) = &mut b.reference {
                r.values[1] = f32::NAN;
            }
            b.finite = false;
            b
        },
    ]
}

/// Every argument of a loss call: `forward` trusts its caller and documents its panics, which
/// name one of these (DESIGN.md, Errors); `try_forward` is the entry point for untrusted data.
pub(crate) const LOSS_ARGS: &[&str] = &[
    "embeddings",
    "labels",
    "ref_emb",
    "ref_labels",
    "indices_tuple",
    "embedding_size",
];

/// The bad batches of losses that take embeddings only (ManifoldLoss).
pub(crate) fn unlabeled_batches() -> Vec<Batch> {
    let data = Expect::Data;
    let bare = |b: Batch| b.labels(None);
    vec![
        bare(Batch::good("NaN in the embeddings", data))
            .map(|i, v| if i == 5 { f32::NAN } else { v }),
        bare(Batch::good("+inf in the embeddings", data))
            .map(|i, v| if i == 2 { f32::INFINITY } else { v }),
        bare(Batch::good("an empty batch", Expect::Contract(EMB_ARG)).rows(0)),
        bare(Batch::good("a batch of one", data).rows(1)),
        bare(Batch::good("all embeddings equal (ties)", data)).map(|i, _| (i % WIDTH) as f32 * 0.5),
        bare(Batch::good("zero embeddings", data)).map(|_, _| 0.0),
        bare(Batch::good("large embeddings (1e4)", data)).map(|_, v| v * 1e4),
        bare(Batch::good("width 5, not l = 4", Expect::Contract(WIDTH_ARGS)).width(5)),
        Batch::good("labels given", Expect::Contract(LABELS_ARG)),
        bare(Batch::good(
            "a reference given",
            Expect::Contract(REF_EMB_ARG),
        ))
        .reference(4, WIDTH, None),
    ]
}

/// The bad batches of the self-supervised losses (no labels; the reference is the second view).
pub(crate) fn self_supervised_batches() -> Vec<Batch> {
    let data = Expect::Data;
    let view = |b: Batch| {
        let (rows, width) = (b.rows, b.width);
        b.labels(None).reference(rows, width, None)
    };
    vec![
        view(Batch::good("NaN in the embeddings", data))
            .map(|i, v| if i == 5 { f32::NAN } else { v }),
        view(Batch::good("+inf in the embeddings", data))
            .map(|i, v| if i == 2 { f32::INFINITY } else { v }),
        view(Batch::good("an empty batch", Expect::Contract(EMB_ARG)).rows(0)),
        view(Batch::good("a batch of one", data).rows(1)),
        view(Batch::good("all embeddings equal (ties)", data)).map(|i, _| (i % WIDTH) as f32 * 0.5),
        view(Batch::good("zero embeddings", data)).map(|_, _| 0.0),
        view(Batch::good("large embeddings (1e4)", data)).map(|_, v| v * 1e4),
        Batch::good(
            "views of different lengths",
            Expect::Contract(&["ref_emb", "embeddings"]),
        )
        .labels(None)
        .reference(3, WIDTH, None),
        Batch::good("views of different widths", Expect::Contract(REF_EMB_ARG))
            .labels(None)
            .reference(LABELS.len(), WIDTH + 1, None),
        view(Batch::good("labels given", Expect::Contract(LABELS_ARG)))
            .labels(Some(LABELS.to_vec())),
    ]
}
