use burn::tensor::{Bool, Int, Tensor, backend::Backend};

use crate::tensor::{int_tensor, take};

/// Mined tuples, as in PML's `indices_tuple`: Int tensors on the device.
///
/// Indices of anchors (`a1`, `a2`, `a`) point into the batch's embeddings; positives and
/// negatives point into the reference set (the batch itself unless a `ref_emb` is given).
#[derive(Clone, Debug)]
pub enum IndicesTuple<B: Backend> {
    /// Positive pairs `(a1[k], p[k])` and negative pairs `(a2[k], n[k])`.
    Pairs {
        /// Anchors of the positive pairs.
        a1: Tensor<B, 1, Int>,
        /// Positives.
        p: Tensor<B, 1, Int>,
        /// Anchors of the negative pairs.
        a2: Tensor<B, 1, Int>,
        /// Negatives.
        n: Tensor<B, 1, Int>,
    },
    /// Triplets `(a[k], p[k], n[k])`.
    Triplets {
        /// Anchors.
        a: Tensor<B, 1, Int>,
        /// Positives.
        p: Tensor<B, 1, Int>,
        /// Negatives.
        n: Tensor<B, 1, Int>,
    },
}

fn same_len<B: Backend>(what: &str, tensors: &[(&str, &Tensor<B, 1, Int>)]) {
    let first = tensors[0].1.dims()[0];
    for (name, t) in tensors {
        assert_eq!(
            t.dims()[0],
            first,
            "{what}: `{name}` has length {} but `{}` has length {first}",
            t.dims()[0],
            tensors[0].0
        );
    }
}

impl<B: Backend> IndicesTuple<B> {
    /// Positive pairs `(a1, p)` and negative pairs `(a2, n)`.
    ///
    /// # Panics
    /// If `a1` and `p`, or `a2` and `n`, differ in length.
    pub fn pairs(
        a1: Tensor<B, 1, Int>,
        p: Tensor<B, 1, Int>,
        a2: Tensor<B, 1, Int>,
        n: Tensor<B, 1, Int>,
    ) -> Self {
        same_len("IndicesTuple::pairs", &[("a1", &a1), ("p", &p)]);
        same_len("IndicesTuple::pairs", &[("a2", &a2), ("n", &n)]);
        Self::Pairs { a1, p, a2, n }
    }

    /// Triplets `(a, p, n)`.
    ///
    /// # Panics
    /// If the three tensors differ in length.
    pub fn triplets(a: Tensor<B, 1, Int>, p: Tensor<B, 1, Int>, n: Tensor<B, 1, Int>) -> Self {
        same_len("IndicesTuple::triplets", &[("a", &a), ("p", &p), ("n", &n)]);
        Self::Triplets { a, p, n }
    }

    /// Pairs from host index lists.
    ///
    /// # Panics
    /// As [`IndicesTuple::pairs`].
    pub fn pairs_from_slices(
        a1: &[i64],
        p: &[i64],
        a2: &[i64],
        n: &[i64],
        device: &B::Device,
    ) -> Self {
        Self::pairs(
            int_tensor(a1, device),
            int_tensor(p, device),
            int_tensor(a2, device),
            int_tensor(n, device),
        )
    }

    /// Triplets from host index lists.
    ///
    /// # Panics
    /// As [`IndicesTuple::triplets`].
    pub fn triplets_from_slices(a: &[i64], p: &[i64], n: &[i64], device: &B::Device) -> Self {
        Self::triplets(
            int_tensor(a, device),
            int_tensor(p, device),
            int_tensor(n, device),
        )
    }

    /// Number of positive pairs (`a1.len()`); for triplets, the number of triplets.
    pub fn num_pos_pairs(&self) -> usize {
        match self {
            Self::Pairs { a1, .. } => a1.dims()[0],
            Self::Triplets { a, .. } => a.dims()[0],
        }
    }

    /// Number of negative pairs (`a2.len()`); for triplets, the number of triplets.
    pub fn num_neg_pairs(&self) -> usize {
        match self {
            Self::Pairs { a2, .. } => a2.dims()[0],
            Self::Triplets { a, .. } => a.dims()[0],
        }
    }

    /// Number of triplets; 0 for pairs.
    pub fn num_triplets(&self) -> usize {
        match self {
            Self::Pairs { .. } => 0,
            Self::Triplets { a, .. } => a.dims()[0],
        }
    }

    /// The tuple with only the positive pairs (for triplets, the triplets) for which
    /// `keep(anchors, positives)` is true; negative pairs are unchanged.
    ///
    /// # Shapes
    /// `keep` gets the `[k]` anchors and positives and returns a `[k]` mask.
    pub fn retain_positives(
        self,
        keep: impl FnOnce(&Tensor<B, 1, Int>, &Tensor<B, 1, Int>) -> Tensor<B, 1, Bool>,
    ) -> Self {
        let kept =
            |a: &Tensor<B, 1, Int>, p: &Tensor<B, 1, Int>| keep(a, p).argwhere().reshape([-1]);
        match self {
            Self::Pairs { a1, p, a2, n } => {
                let k = kept(&a1, &p);
                Self::pairs(take(a1, k.clone()), take(p, k), a2, n)
            }
            Self::Triplets { a, p, n } => {
                let k = kept(&a, &p);
                Self::triplets(take(a, k.clone()), take(p, k.clone()), take(n, k))
            }
        }
    }

    /// The device the indices live on.
    pub fn device(&self) -> B::Device {
        match self {
            Self::Pairs { a1, .. } => a1.device(),
            Self::Triplets { a, .. } => a.device(),
        }
    }
}
