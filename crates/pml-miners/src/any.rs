use burn::tensor::{Int, Tensor, backend::Backend};
use pml_core::{IndicesTuple, Miner, PmlError, Reference};

use crate::{
    AngularMiner, AngularMinerConfig, BatchEasyHardMiner, BatchEasyHardMinerConfig, BatchHardMiner,
    BatchHardMinerConfig, DistanceWeightedMiner, DistanceWeightedMinerConfig,
    EmbeddingsAlreadyPackagedAsTriplets, EmbeddingsAlreadyPackagedAsTripletsConfig, HDCMiner,
    HDCMinerConfig, MinerCounts, MultiSimilarityMiner, MultiSimilarityMinerConfig, PairMarginMiner,
    PairMarginMinerConfig, TripletMarginMiner, TripletMarginMinerConfig, UniformHistogramMiner,
    UniformHistogramMinerConfig,
};

/// Any miner, by configuration: what a trainer's or a `CrossBatchMemory`'s `miner` slot holds.
///
/// Serializes as a PML spec, `{"name": "MultiSimilarityMiner", "params": {"epsilon": 0.1}}`
/// (a `distance` spec may sit in `params` or next to it); absent params take PML's defaults.
///
/// ```
/// use pml_miners::MinerConfig;
/// let c: MinerConfig = serde_json::from_str(
///     r#"{"name": "BatchHardMiner", "params": {},
///         "distance": {"name": "LpDistance", "params": {"normalize_embeddings": false}}}"#,
/// ).unwrap();
/// assert_eq!(c.pml_name(), "BatchHardMiner");
/// let miner = c.try_init().unwrap();
/// # let _ = miner;
/// ```
#[derive(Clone, Debug)]
pub enum MinerConfig {
    /// [`AngularMiner`].
    Angular(AngularMinerConfig),
    /// [`BatchEasyHardMiner`].
    BatchEasyHard(BatchEasyHardMinerConfig),
    /// [`BatchHardMiner`].
    BatchHard(BatchHardMinerConfig),
    /// [`DistanceWeightedMiner`].
    DistanceWeighted(DistanceWeightedMinerConfig),
    /// [`EmbeddingsAlreadyPackagedAsTriplets`].
    EmbeddingsAlreadyPackagedAsTriplets(EmbeddingsAlreadyPackagedAsTripletsConfig),
    /// [`HDCMiner`].
    Hdc(HDCMinerConfig),
    /// [`MultiSimilarityMiner`].
    MultiSimilarity(MultiSimilarityMinerConfig),
    /// [`PairMarginMiner`].
    PairMargin(PairMarginMinerConfig),
    /// [`TripletMarginMiner`].
    TripletMargin(TripletMarginMinerConfig),
    /// [`UniformHistogramMiner`].
    UniformHistogram(UniformHistogramMinerConfig),
}

pml_core::spec_enum!(MinerConfig {
    Angular(AngularMinerConfig) = "AngularMiner" => AngularMinerConfig::new(),
    BatchEasyHard(BatchEasyHardMinerConfig) = "BatchEasyHardMiner" => BatchEasyHardMinerConfig::new(),
    BatchHard(BatchHardMinerConfig) = "BatchHardMiner" => BatchHardMinerConfig::new(),
    DistanceWeighted(DistanceWeightedMinerConfig) = "DistanceWeightedMiner" => DistanceWeightedMinerConfig::new(),
    EmbeddingsAlreadyPackagedAsTriplets(EmbeddingsAlreadyPackagedAsTripletsConfig) = "EmbeddingsAlreadyPackagedAsTriplets" => EmbeddingsAlreadyPackagedAsTripletsConfig::new(),
    Hdc(HDCMinerConfig) = "HDCMiner" => HDCMinerConfig::new(),
    MultiSimilarity(MultiSimilarityMinerConfig) = "MultiSimilarityMiner" => MultiSimilarityMinerConfig::new(),
    PairMargin(PairMarginMinerConfig) = "PairMarginMiner" => PairMarginMinerConfig::new(),
    TripletMargin(TripletMarginMinerConfig) = "TripletMarginMiner" => TripletMarginMinerConfig::new(),
    UniformHistogram(UniformHistogramMinerConfig) = "UniformHistogramMiner" => UniformHistogramMinerConfig::new(),
});

impl MinerConfig {
    /// Builds the miner, refusing invalid hyperparameters and the configurations PML refuses.
    pub fn try_init(&self) -> Result<AnyMiner, PmlError> {
        Ok(match self {
            Self::Angular(c) => AnyMiner::Angular(c.try_init()?),
            Self::BatchEasyHard(c) => AnyMiner::BatchEasyHard(c.try_init()?),
            Self::BatchHard(c) => AnyMiner::BatchHard(c.try_init()?),
            Self::DistanceWeighted(c) => AnyMiner::DistanceWeighted(c.try_init()?),
            Self::EmbeddingsAlreadyPackagedAsTriplets(c) => {
                AnyMiner::EmbeddingsAlreadyPackagedAsTriplets(c.try_init()?)
            }
            Self::Hdc(c) => AnyMiner::Hdc(c.try_init()?),
            Self::MultiSimilarity(c) => AnyMiner::MultiSimilarity(c.try_init()?),
            Self::PairMargin(c) => AnyMiner::PairMargin(c.try_init()?),
            Self::TripletMargin(c) => AnyMiner::TripletMargin(c.try_init()?),
            Self::UniformHistogram(c) => AnyMiner::UniformHistogram(c.try_init()?),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> AnyMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Any built miner (see [`MinerConfig`]).
#[derive(Clone, Debug)]
pub enum AnyMiner {
    /// [`AngularMiner`].
    Angular(AngularMiner),
    /// [`BatchEasyHardMiner`].
    BatchEasyHard(BatchEasyHardMiner),
    /// [`BatchHardMiner`].
    BatchHard(BatchHardMiner),
    /// [`DistanceWeightedMiner`].
    DistanceWeighted(DistanceWeightedMiner),
    /// [`EmbeddingsAlreadyPackagedAsTriplets`].
    EmbeddingsAlreadyPackagedAsTriplets(EmbeddingsAlreadyPackagedAsTriplets),
    /// [`HDCMiner`].
    Hdc(HDCMiner),
    /// [`MultiSimilarityMiner`].
    MultiSimilarity(MultiSimilarityMiner),
    /// [`PairMarginMiner`].
    PairMargin(PairMarginMiner),
    /// [`TripletMarginMiner`].
    TripletMargin(TripletMarginMiner),
    /// [`UniformHistogramMiner`].
    UniformHistogram(UniformHistogramMiner),
}

macro_rules! each {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            AnyMiner::Angular($m) => $e,
            AnyMiner::BatchEasyHard($m) => $e,
            AnyMiner::BatchHard($m) => $e,
            AnyMiner::DistanceWeighted($m) => $e,
            AnyMiner::EmbeddingsAlreadyPackagedAsTriplets($m) => $e,
            AnyMiner::Hdc($m) => $e,
            AnyMiner::MultiSimilarity($m) => $e,
            AnyMiner::PairMargin($m) => $e,
            AnyMiner::TripletMargin($m) => $e,
            AnyMiner::UniformHistogram($m) => $e,
        }
    };
}

impl AnyMiner {
    /// The counts of the last call (PML's `num_pos_pairs`, `num_neg_pairs`, `num_triplets`).
    pub fn last_counts(&self) -> MinerCounts {
        each!(self, m => m.last_counts())
    }
}

impl<B: Backend> Miner<B> for AnyMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        each!(self, m => m.mine(embeddings, labels, reference))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_miner_spec_round_trips() {
        // PML's ten miners, all registered (the list other crates iterate over).
        let pml = [
            "AngularMiner",
            "BatchEasyHardMiner",
            "BatchHardMiner",
            "DistanceWeightedMiner",
            "EmbeddingsAlreadyPackagedAsTriplets",
            "HDCMiner",
            "MultiSimilarityMiner",
            "PairMarginMiner",
            "TripletMarginMiner",
            "UniformHistogramMiner",
        ];
        assert_eq!(MinerConfig::PML_NAMES, pml);
        for name in pml {
            let c: MinerConfig =
                serde_json::from_str(&format!(r#"{{"name": "{name}", "params": {{}}}}"#)).unwrap();
            assert_eq!(c.pml_name(), name);
            c.try_init().unwrap();
            let again: MinerConfig =
                serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(again.pml_name(), name);
        }
    }

    #[test]
    fn pml_values_and_refusals_from_specs() {
        let c: MinerConfig = serde_json::from_str(
            r#"{"name": "BatchEasyHardMiner", "params": {"pos_strategy": "all", "neg_strategy": "semihard"}}"#,
        )
        .unwrap();
        let err = c.try_init().unwrap_err().to_string();
        assert!(
            err.contains("\"semihard\" cannot be used in combination with \"all\""),
            "{err}"
        );
        let c: MinerConfig = serde_json::from_str(
            r#"{"name": "BatchEasyHardMiner", "params": {"allowed_pos_range": [0.1, 0.5]}}"#,
        )
        .unwrap();
        let MinerConfig::BatchEasyHard(b) = &c else {
            panic!()
        };
        assert_eq!(b.allowed_pos_range, Some([0.1, 0.5]));
        let err = serde_json::from_str::<MinerConfig>(
            r#"{"name": "TripletMarginMiner", "params": {"type_of_triplets": "medium"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("medium"), "{err}");
        let err = serde_json::from_str::<MinerConfig>(r#"{"name": "NopeMiner"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not implemented: NopeMiner"), "{err}");
        // MultiSimilarityMiner defaults to cosine similarity, the others to LpDistance.
        let MinerConfig::MultiSimilarity(ms) =
            serde_json::from_str(r#"{"name": "MultiSimilarityMiner"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(ms.distance.pml_name(), "CosineSimilarity");
    }
}
