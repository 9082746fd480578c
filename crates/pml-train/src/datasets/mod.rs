//! Datasets: MNIST (IDX files; the test set ships embedded), labelled CSV files (the 8x8 digits
//! ship embedded), and image folders in the layouts of CUB-200-2011, Cars196 and Stanford Online
//! Products.
//!
//! Image folders ([`cub_200_2011`], [`cars196`], [`stanford_online_products`], each with PML's
//! [`Split`]s) give an [`ImageFolderDataset`] of `(path, label)` [`ImageItem`]s, decoded lazily
//! by [`ImageBatcher`] into an [`ImageBatch`] (`images: [batch, 3, height, width]`,
//! `labels: [batch]`).
//!
//! In-memory data ([`VectorDataset`]) yields [`VectorItem`]s that [`VectorBatcher`] stacks into a
//! [`VectorBatch`] (`images: [batch, dim]`, `labels: [batch]`).
//!
//! Malformed files give [`PmlError::File`](pml_core::PmlError::File) naming the file and the
//! problem.

mod cars196;
mod csv;
mod cub;
mod image_folder;
mod io;
mod mnist;
mod sop;
mod vector;

pub use cars196::cars196;
pub use csv::{CsvDatasetConfig, digits};
pub use cub::cub_200_2011;
pub use image_folder::{
    ImageBatch, ImageBatcher, ImageBatcherConfig, ImageFolderDataset, ImageItem, Split,
};
pub use mnist::{MNIST_PIXELS, load_mnist, mnist_from_bytes, mnist_test_set};
pub use sop::stanford_online_products;
pub use vector::{VectorBatch, VectorBatcher, VectorDataset, VectorItem};
