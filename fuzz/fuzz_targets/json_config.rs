//! JSON configs and parity case files on arbitrary bytes: the specs of losses, miners,
//! reducers and distances (parsed, and built when their sizes are small), and case files
//! (parsed, every tensor in them decoded): a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pml_distances::DistanceConfig;
use pml_losses::LossConfig;
use pml_miners::MinerConfig;
use pml_reducers::ReducerConfig;
use serde_json::Value;

type B = burn::backend::NdArray;

/// Whether every number in `v` is at most 64 in magnitude, so building the item allocates
/// little (a spec asking for 10^12 classes is refused by the allocator, not by pml-rs).
fn small(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(|x| x.abs() <= 64.0),
        Value::Array(a) => a.len() <= 64 && a.iter().all(small),
        Value::Object(o) => o.values().all(small),
        _ => true,
    }
}

/// Decodes every `{"shape": ..., "data": ...}` tensor inside `v`.
fn decode_tensors(v: &Value) {
    match v {
        Value::Object(o) => {
            if o.contains_key("shape") && o.contains_key("data") {
                let _ = pml_testing::raw_tensor("tensor", v);
            }
            o.values().for_each(decode_tensors);
        }
        Value::Array(a) => a.iter().for_each(decode_tensors),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cases) = pml_testing::parse_cases(text, "fuzz.json") {
        for case in &cases {
            decode_tensors(&case.inputs);
            decode_tensors(&case.calls.iter().cloned().collect());
            decode_tensors(&Value::Object(case.parameters.clone()));
        }
    }
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let build = small(&value);
    let device = Default::default();
    if let Ok(c) = serde_json::from_value::<LossConfig>(value.clone()) {
        let _ = serde_json::to_string(&c);
        if build {
            let _ = c.try_init::<B>(&device);
        }
    }
    if let Ok(c) = serde_json::from_value::<MinerConfig>(value.clone()) {
        let _ = c.try_init();
    }
    if let Ok(c) = serde_json::from_value::<ReducerConfig>(value.clone())
        && c.validate().is_ok()
    {
        let _ = c.init();
    }
    if let Ok(c) = serde_json::from_value::<DistanceConfig>(value)
        && c.validate().is_ok()
    {
        let _ = c.init();
    }
});
