use burn::tensor::{Int, Tensor, backend::Backend};

/// How a term's losses are indexed, which tells a reducer how to reduce them (PML's
/// `reduction_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReductionType {
    /// One loss per batch element (`indices` = element indices).
    Element,
    /// One loss per positive pair (`indices` = anchors, positives).
    PosPair,
    /// One loss per negative pair (`indices` = anchors, negatives).
    NegPair,
    /// One loss per triplet (`indices` = anchors, positives, negatives).
    Triplet,
    /// Already a scalar: reducers pass it through.
    AlreadyReduced,
}

impl ReductionType {
    /// PML's name of the reduction type (`"element"`, `"pos_pair"`, ...).
    pub fn pml_name(self) -> &'static str {
        match self {
            Self::Element => "element",
            Self::PosPair => "pos_pair",
            Self::NegPair => "neg_pair",
            Self::Triplet => "triplet",
            Self::AlreadyReduced => "already_reduced",
        }
    }
}

/// The indices that go with a term's losses.
#[derive(Clone, Debug)]
pub enum TermIndices<B: Backend> {
    /// No indices (already reduced terms).
    None,
    /// Element indices, one per loss.
    Element(Tensor<B, 1, Int>),
    /// Anchor and other index per pair loss.
    Pair(Tensor<B, 1, Int>, Tensor<B, 1, Int>),
    /// Anchor, positive and negative index per triplet loss.
    Triplet(Tensor<B, 1, Int>, Tensor<B, 1, Int>, Tensor<B, 1, Int>),
}

impl<B: Backend> TermIndices<B> {
    /// The anchor (first) indices, if any.
    pub fn anchors(&self) -> Option<&Tensor<B, 1, Int>> {
        match self {
            Self::None => None,
            Self::Element(i) | Self::Pair(i, _) | Self::Triplet(i, _, _) => Some(i),
        }
    }
}

/// One named term of a loss before reduction (one entry of PML's loss dict).
#[derive(Clone, Debug)]
pub struct LossTerm<B: Backend> {
    /// The term's name (`"loss"`, `"pos_loss"`, `"embedding_reg_loss"`, ...).
    pub name: String,
    /// The unreduced losses, shape `[k]`; `None` is PML's zero loss (no pairs or triplets),
    /// which every reducer turns into a zero that keeps the gradient graph.
    pub losses: Option<Tensor<B, 1>>,
    /// The indices the losses belong to.
    pub indices: TermIndices<B>,
    /// How to reduce the losses.
    pub reduction_type: ReductionType,
    /// Optional divisor, used by `DivisorReducer`, shape `[1]`.
    pub divisor: Option<Tensor<B, 1>>,
}

fn check_len<B: Backend>(name: &str, losses: &Tensor<B, 1>, indices: &[&Tensor<B, 1, Int>]) {
    let k = losses.dims()[0];
    for i in indices {
        assert_eq!(
            i.dims()[0],
            k,
            "loss term `{name}`: {k} losses but {} indices",
            i.dims()[0]
        );
    }
}

impl<B: Backend> LossTerm<B> {
    /// Per-element losses.
    ///
    /// # Panics
    /// If `losses` and `indices` differ in length.
    pub fn element(name: &str, losses: Tensor<B, 1>, indices: Tensor<B, 1, Int>) -> Self {
        check_len(name, &losses, &[&indices]);
        Self::new(
            name,
            Some(losses),
            TermIndices::Element(indices),
            ReductionType::Element,
        )
    }

    /// Per-positive-pair losses.
    ///
    /// # Panics
    /// If `losses`, `anchors` and `positives` differ in length.
    pub fn pos_pair(
        name: &str,
        losses: Tensor<B, 1>,
        anchors: Tensor<B, 1, Int>,
        positives: Tensor<B, 1, Int>,
    ) -> Self {
        check_len(name, &losses, &[&anchors, &positives]);
        Self::new(
            name,
            Some(losses),
            TermIndices::Pair(anchors, positives),
            ReductionType::PosPair,
        )
    }

    /// Per-negative-pair losses.
    ///
    /// # Panics
    /// If `losses`, `anchors` and `negatives` differ in length.
    pub fn neg_pair(
        name: &str,
        losses: Tensor<B, 1>,
        anchors: Tensor<B, 1, Int>,
        negatives: Tensor<B, 1, Int>,
    ) -> Self {
        check_len(name, &losses, &[&anchors, &negatives]);
        Self::new(
            name,
            Some(losses),
            TermIndices::Pair(anchors, negatives),
            ReductionType::NegPair,
        )
    }

    /// Per-triplet losses.
    ///
    /// # Panics
    /// If the losses and the three index tensors differ in length.
    pub fn triplet(
        name: &str,
        losses: Tensor<B, 1>,
        anchors: Tensor<B, 1, Int>,
        positives: Tensor<B, 1, Int>,
        negatives: Tensor<B, 1, Int>,
    ) -> Self {
        check_len(name, &losses, &[&anchors, &positives, &negatives]);
        Self::new(
            name,
            Some(losses),
            TermIndices::Triplet(anchors, positives, negatives),
            ReductionType::Triplet,
        )
    }

    /// A scalar (shape `[1]`) that reducers pass through unchanged.
    pub fn already_reduced(name: &str, loss: Tensor<B, 1>) -> Self {
        Self::new(
            name,
            Some(loss),
            TermIndices::None,
            ReductionType::AlreadyReduced,
        )
    }

    /// PML's zero loss: the term exists but has nothing to reduce (no pairs or triplets).
    pub fn zero(name: &str) -> Self {
        Self::new(name, None, TermIndices::None, ReductionType::AlreadyReduced)
    }

    /// Attaches a divisor (for `DivisorReducer`).
    pub fn with_divisor(mut self, divisor: Tensor<B, 1>) -> Self {
        self.divisor = Some(divisor);
        self
    }

    fn new(
        name: &str,
        losses: Option<Tensor<B, 1>>,
        indices: TermIndices<B>,
        reduction_type: ReductionType,
    ) -> Self {
        Self {
            name: name.to_string(),
            losses,
            indices,
            reduction_type,
            divisor: None,
        }
    }
}

/// A loss before reduction: PML's loss dict, in insertion order.
#[derive(Clone, Debug, Default)]
pub struct LossTerms<B: Backend> {
    /// The terms.
    pub terms: Vec<LossTerm<B>>,
}

impl<B: Backend> LossTerms<B> {
    /// No terms.
    pub fn new() -> Self {
        Self { terms: Vec::new() }
    }

    /// Appends a term.
    pub fn push(&mut self, term: LossTerm<B>) {
        self.terms.push(term);
    }

    /// Appends a term, builder style.
    pub fn with(mut self, term: LossTerm<B>) -> Self {
        self.push(term);
        self
    }

    /// Zero-loss terms with the given names (PML's `zero_losses()`).
    pub fn zeros(names: &[&str]) -> Self {
        Self {
            terms: names.iter().map(|n| LossTerm::zero(n)).collect(),
        }
    }

    /// The term called `name`.
    pub fn get(&self, name: &str) -> Option<&LossTerm<B>> {
        self.terms.iter().find(|t| t.name == name)
    }

    /// The terms' names.
    pub fn names(&self) -> Vec<&str> {
        self.terms.iter().map(|t| t.name.as_str()).collect()
    }
}
