//! The labelled-CSV reader on arbitrary bytes: a dataset whose sizes agree, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pml_train::datasets::CsvDatasetConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = CsvDatasetConfig::new().parse(data.to_vec(), "fuzz.csv") {
        assert_eq!(d.features().len(), d.len() * d.dim());
        assert!(d.features().iter().all(|v| v.is_finite()));
    }
});
