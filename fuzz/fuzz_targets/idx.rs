//! The MNIST IDX reader on arbitrary bytes: a dataset whose sizes agree, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pml_train::datasets::mnist_from_bytes;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the rest into the image file and the label file.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = (split as usize * rest.len()) / 255;
    let (images, labels) = rest.split_at(at.min(rest.len()));
    if let Ok(d) = mnist_from_bytes(images.to_vec(), "images", labels.to_vec(), "labels") {
        assert_eq!(d.features().len(), d.len() * d.dim());
    }
});
