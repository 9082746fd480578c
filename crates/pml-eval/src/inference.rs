//! PML's `InferenceModel`: an index over embeddings for nearest-neighbour queries and matching.

use std::{
    io::{Read, Write},
    marker::PhantomData,
    path::Path,
};

use burn::{
    config::Config,
    tensor::{Bool, Tensor, TensorData, backend::Backend},
};
use pml_core::{PmlError, math::normalize_rows};

use crate::{EmbeddingModel, Knn, KnnConfig, MatchFinder, MatchFinderConfig, Neighbors};

const MAGIC: &[u8; 8] = b"PMLIDX01";

/// Embeddings on the device with an exact kNN search over them (PML's `FaissKNN` with
/// `reset_before=False`: build, add incrementally, search, save, load).
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use pml_eval::{EmbeddingIndex, KnnConfig};
///
/// let device = Default::default();
/// let mut index = EmbeddingIndex::<NdArray>::new(KnnConfig::new().init());
/// index.add(Tensor::from_floats([[0.0, 0.0], [1.0, 0.0]], &device));
/// index.add(Tensor::from_floats([[5.0, 5.0]], &device));
/// let nn = index.search(Tensor::from_floats([[4.0, 4.0]], &device), 1).unwrap();
/// assert_eq!(nn.indices_of(0), &[2]);
///
/// let path = std::env::temp_dir().join("pml_eval_index_doc.bin");
/// index.save(&path).unwrap();
/// let loaded = EmbeddingIndex::<NdArray>::load(&path, KnnConfig::new().init(), &device).unwrap();
/// assert_eq!(loaded.len(), 3);
/// # std::fs::remove_file(&path).ok();
/// ```
#[derive(Clone, Debug)]
pub struct EmbeddingIndex<B: Backend> {
    embeddings: Option<Tensor<B, 2>>,
    knn: Knn,
}

impl<B: Backend> EmbeddingIndex<B> {
    /// An empty index searched with `knn`.
    pub fn new(knn: Knn) -> Self {
        Self {
            embeddings: None,
            knn,
        }
    }

    /// Replaces the indexed embeddings (PML's `train`).
    pub fn build(&mut self, embeddings: Tensor<B, 2>) {
        self.embeddings = Some(embeddings);
    }

    /// Appends embeddings; their indices continue after the existing ones.
    ///
    /// # Panics
    /// If the width differs from the indexed embeddings'.
    pub fn add(&mut self, embeddings: Tensor<B, 2>) {
        self.embeddings = Some(match self.embeddings.take() {
            None => embeddings,
            Some(old) => {
                assert_eq!(
                    old.dims()[1],
                    embeddings.dims()[1],
                    "EmbeddingIndex::add: width {} differs from the index's {}",
                    embeddings.dims()[1],
                    old.dims()[1]
                );
                Tensor::cat(vec![old, embeddings], 0)
            }
        });
    }

    /// The number of indexed embeddings.
    pub fn len(&self) -> usize {
        self.embeddings.as_ref().map_or(0, |e| e.dims()[0])
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The indexed embeddings, `[len, d]`.
    pub fn embeddings(&self) -> Option<&Tensor<B, 2>> {
        self.embeddings.as_ref()
    }

    /// The `k` nearest indexed embeddings of each query.
    ///
    /// # Errors
    /// When the index is empty or the widths differ.
    pub fn search(&self, query: Tensor<B, 2>, k: usize) -> Result<Neighbors, PmlError> {
        let reference = self.embeddings.clone().ok_or_else(|| {
            PmlError::invalid_input("index", "the index is empty: build or add embeddings first")
        })?;
        self.knn.search(query, reference, k)
    }

    /// Writes the embeddings to `path` (`PMLIDX01`, rows and width as little-endian `u64`, then
    /// the values as little-endian `f32`).
    ///
    /// # Errors
    /// When the index is empty or the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), PmlError> {
        let path = path.as_ref();
        let file_err = |reason: String| PmlError::File {
            path: path.display().to_string(),
            reason,
        };
        let emb = self
            .embeddings
            .clone()
            .ok_or_else(|| file_err("the index is empty: nothing to save".into()))?;
        let [n, d] = emb.dims();
        let values: Vec<f32> = emb.into_data().iter::<f32>().collect();
        let mut bytes = Vec::with_capacity(24 + 4 * values.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(n as u64).to_le_bytes());
        bytes.extend_from_slice(&(d as u64).to_le_bytes());
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let mut f = std::fs::File::create(path).map_err(|e| file_err(e.to_string()))?;
        f.write_all(&bytes).map_err(|e| file_err(e.to_string()))
    }

    /// Reads an index written by [`save`](Self::save) onto `device`.
    ///
    /// # Errors
    /// When the file cannot be read or is not an index file.
    pub fn load(path: impl AsRef<Path>, knn: Knn, device: &B::Device) -> Result<Self, PmlError> {
        let path = path.as_ref();
        let file_err = |reason: String| PmlError::File {
            path: path.display().to_string(),
            reason,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| file_err(e.to_string()))?;
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return Err(file_err("not a pml-eval index file".into()));
        }
        let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let (n, d) = (word(8) as usize, word(16) as usize);
        let body = &bytes[24..];
        if n.checked_mul(d).and_then(|x| x.checked_mul(4)) != Some(body.len()) {
            return Err(file_err(format!(
                "header says {n} x {d} values but the file holds {} bytes of data",
                body.len()
            )));
        }
        let values: Vec<f32> = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        Ok(Self {
            embeddings: Some(Tensor::from_data(TensorData::new(values, [n, d]), device)),
            knn,
        })
    }
}

/// Configuration of [`InferenceModel`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct InferenceModelConfig {
    /// L2-normalize the embeddings.
    #[config(default = true)]
    pub normalize_embeddings: bool,
    /// The kNN search over the index (PML's `knn_func`).
    #[config(default = "KnnConfig::new()")]
    pub knn: KnnConfig,
    /// The match finder (PML's default: cosine similarity, threshold 0.9).
    #[config(default = "MatchFinderConfig::new()")]
    pub match_finder: MatchFinderConfig,
}

impl InferenceModelConfig {
    /// Wraps `model`.
    ///
    /// # Errors
    /// An invalid kNN or match-finder configuration.
    pub fn try_init<B: Backend, I, M: EmbeddingModel<B, I>>(
        &self,
        model: M,
    ) -> Result<InferenceModel<B, I, M>, PmlError> {
        Ok(InferenceModel {
            model,
            normalize_embeddings: self.normalize_embeddings,
            index: EmbeddingIndex::new(self.knn.try_init()?),
            match_finder: self.match_finder.try_init()?,
            _input: PhantomData,
        })
    }

    /// Wraps `model`.
    ///
    /// # Panics
    /// On an invalid configuration.
    pub fn init<B: Backend, I, M: EmbeddingModel<B, I>>(
        &self,
        model: M,
    ) -> InferenceModel<B, I, M> {
        self.try_init(model).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// PML's `InferenceModel`: embeds inputs with a model, keeps an [`EmbeddingIndex`] for
/// nearest-neighbour queries and decides matches with a [`MatchFinder`].
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use pml_eval::InferenceModelConfig;
///
/// type B = NdArray;
/// let device = Default::default();
/// // The "model": the identity on 2-D points.
/// let mut im = InferenceModelConfig::new().init(|x: Tensor<B, 2>| x);
/// im.train_knn([Tensor::<B, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], &device)]);
/// let nn = im.get_nearest_neighbors(Tensor::from_floats([[0.1, 1.0]], &device), 1).unwrap();
/// assert_eq!(nn.indices_of(0), &[1]);
/// let same: Vec<bool> = im
///     .is_match(Tensor::from_floats([[1.0, 0.0]], &device), Tensor::from_floats([[2.0, 0.1]], &device))
///     .into_data().iter::<bool>().collect();
/// assert_eq!(same, vec![true]);
/// ```
pub struct InferenceModel<B: Backend, I, M: EmbeddingModel<B, I>> {
    model: M,
    normalize_embeddings: bool,
    index: EmbeddingIndex<B>,
    match_finder: MatchFinder,
    _input: PhantomData<fn(I)>,
}

impl<B: Backend, I, M: EmbeddingModel<B, I>> InferenceModel<B, I, M> {
    /// The embeddings of a batch (normalized with `normalize_embeddings`).
    pub fn get_embeddings(&self, input: I) -> Tensor<B, 2> {
        let e = self.model.embed(input);
        if self.normalize_embeddings {
            normalize_rows(e, 2.0)
        } else {
            e
        }
    }

    fn embed_all(&self, batches: impl IntoIterator<Item = I>) -> Option<Tensor<B, 2>> {
        let parts: Vec<Tensor<B, 2>> = batches
            .into_iter()
            .map(|b| self.get_embeddings(b))
            .collect();
        (!parts.is_empty()).then(|| Tensor::cat(parts, 0))
    }

    /// Replaces the index by the embeddings of `batches` (PML's `train_knn`).
    pub fn train_knn(&mut self, batches: impl IntoIterator<Item = I>) {
        if let Some(e) = self.embed_all(batches) {
            self.index.build(e);
        }
    }

    /// Appends the embeddings of `batches` to the index (PML's `add_to_knn`).
    pub fn add_to_knn(&mut self, batches: impl IntoIterator<Item = I>) {
        if let Some(e) = self.embed_all(batches) {
            self.index.add(e);
        }
    }

    /// The `k` nearest indexed items of each query.
    ///
    /// # Errors
    /// When the index is empty or the widths differ.
    pub fn get_nearest_neighbors(&self, query: I, k: usize) -> Result<Neighbors, PmlError> {
        self.index.search(self.get_embeddings(query), k)
    }

    /// `[n, m]` matches between queries and references (the queries themselves without
    /// references).
    pub fn get_matches(&self, query: I, reference: Option<I>) -> Tensor<B, 2, Bool> {
        let q = self.get_embeddings(query);
        let r = reference.map(|r| self.get_embeddings(r));
        self.match_finder.get_matching_pairs(q, r)
    }

    /// `[n]`: whether `x_i` matches `y_i`.
    pub fn is_match(&self, x: I, y: I) -> Tensor<B, 1, Bool> {
        let x = self.get_embeddings(x);
        let y = self.get_embeddings(y);
        self.match_finder.is_match(x, y)
    }

    /// The index.
    pub fn index(&self) -> &EmbeddingIndex<B> {
        &self.index
    }

    /// The index, mutably (to load one: `*im.index_mut() = EmbeddingIndex::load(...)?`).
    pub fn index_mut(&mut self) -> &mut EmbeddingIndex<B> {
        &mut self.index
    }

    /// The match finder, e.g. to [`calibrate`](MatchFinder::calibrate) its threshold.
    pub fn match_finder_mut(&mut self) -> &mut MatchFinder {
        &mut self.match_finder
    }

    /// Saves the index (PML's `save_knn_func`).
    pub fn save_knn_func(&self, path: impl AsRef<Path>) -> Result<(), PmlError> {
        self.index.save(path)
    }

    /// Loads an index saved by [`save_knn_func`](Self::save_knn_func) (PML's `load_knn_func`).
    pub fn load_knn_func(
        &mut self,
        path: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<(), PmlError> {
        let knn = self.index.knn.clone();
        self.index = EmbeddingIndex::load(path, knn, device)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn bad_index_files_are_errors() {
        let device = Default::default();
        let dir = std::env::temp_dir();
        let path = dir.join(format!("pml_eval_bad_index_{}.bin", std::process::id()));
        std::fs::write(&path, b"not an index").unwrap();
        let err = EmbeddingIndex::<B>::load(&path, KnnConfig::new().init(), &device).unwrap_err();
        assert!(err.to_string().contains("not a pml-eval index"), "{err}");
        std::fs::remove_file(&path).ok();
        let empty = EmbeddingIndex::<B>::new(KnnConfig::new().init());
        assert!(empty.search(Tensor::zeros([1, 2], &device), 1).is_err());
        assert!(empty.save(&path).is_err());
    }

    #[test]
    fn incremental_adds_keep_indices() {
        let device = Default::default();
        let mut im = InferenceModelConfig::new()
            .with_normalize_embeddings(false)
            .init(|x: Tensor<B, 2>| x);
        im.train_knn([Tensor::<B, 2>::from_floats([[0.0], [10.0]], &device)]);
        im.add_to_knn([
            Tensor::<B, 2>::from_floats([[20.0]], &device),
            Tensor::<B, 2>::from_floats([[30.0]], &device),
        ]);
        let nn = im
            .get_nearest_neighbors(Tensor::from_floats([[29.0], [1.0]], &device), 2)
            .unwrap();
        assert_eq!(nn.indices, vec![3, 2, 0, 1]);
        let path = std::env::temp_dir().join(format!("pml_eval_idx_{}.bin", std::process::id()));
        im.save_knn_func(&path).unwrap();
        im.train_knn([Tensor::<B, 2>::from_floats([[0.0]], &device)]);
        assert_eq!(im.index().len(), 1);
        im.load_knn_func(&path, &device).unwrap();
        assert_eq!(im.index().len(), 4);
        std::fs::remove_file(&path).ok();
    }
}
