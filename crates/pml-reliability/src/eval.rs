//! Evaluation rows: `AccuracyCalculator::get_accuracy`, the exact kNN search (`Knn::search`,
//! `Knn::search_self`) and the saved `EmbeddingIndex`, on empty, lone, one-class, non-finite and
//! mismatched inputs, and `k` past the reference.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use pml_core::PmlError;
use pml_eval::{
    AccuracyCalculatorConfig, AccuracyInput, AccuracyK, EmbeddingIndex, Knn, KnnConfig, KnnMetric,
    Labels, Neighbors, TopKSelection,
};

use crate::{Expect, Report, batch::values};

type Ib = NdArray;

fn emb(rows: usize, width: usize, f: impl Fn(usize, f32) -> f32) -> Tensor<Ib, 2> {
    let v: Vec<f32> = values(rows * width, 23)
        .iter()
        .enumerate()
        .map(|(i, &v)| f(i, v))
        .collect();
    Tensor::from_data(TensorData::new(v, [rows, width]), &Default::default())
}

fn plain(_: usize, v: f32) -> f32 {
    v
}

/// An `AccuracyCalculator` input and what it may give.
struct AccCase {
    name: &'static str,
    input: AccuracyInput<Ib>,
    expect: Expect,
    /// Every query is lone (no match in the reference but itself): the retrieval metrics are
    /// NaN, PML's value (documented on `AccuracyCalculator`).
    lone: bool,
}

fn acc_cases() -> Vec<AccCase> {
    let labels = || vec![0i64, 0, 1, 1, 2, 2];
    let data = |name, input, lone| AccCase {
        name,
        input,
        expect: Expect::Data,
        lone,
    };
    let contract = |name, input, args| AccCase {
        name,
        input,
        expect: Expect::Contract(args),
        lone: false,
    };
    vec![
        data(
            "no queries",
            AccuracyInput::new(emb(0, 4, plain), Vec::<i64>::new()),
            false,
        ),
        data(
            "one query",
            AccuracyInput::new(emb(1, 4, plain), vec![3]),
            true,
        ),
        data(
            "one class only",
            AccuracyInput::new(emb(6, 4, plain), vec![5; 6]),
            false,
        ),
        data(
            "every query its own class",
            AccuracyInput::new(emb(6, 4, plain), (0..6).collect::<Vec<i64>>()),
            true,
        ),
        data(
            "negative and huge labels",
            AccuracyInput::new(
                emb(6, 4, plain),
                vec![-3, -3, i64::MAX, i64::MAX, i64::MIN, i64::MIN],
            ),
            false,
        ),
        data(
            "equal embeddings (ties)",
            AccuracyInput::new(emb(6, 4, |i, _| (i % 4) as f32), labels()),
            false,
        ),
        data(
            "NaN in the queries",
            AccuracyInput::new(
                emb(6, 4, |i, v| if i == 3 { f32::NAN } else { v }),
                labels(),
            ),
            false,
        ),
        data(
            "inf in the reference",
            AccuracyInput::new(emb(6, 4, plain), labels()).with_reference(
                emb(4, 4, |i, v| if i == 0 { f32::INFINITY } else { v }),
                vec![0, 1, 2, 0],
            ),
            false,
        ),
        data(
            "a reference of one row",
            AccuracyInput::new(emb(6, 4, plain), labels())
                .with_reference(emb(1, 4, plain), vec![1]),
            false,
        ),
        data(
            "an empty reference",
            AccuracyInput::new(emb(6, 4, plain), labels())
                .with_reference(emb(0, 4, plain), Vec::<i64>::new()),
            true,
        ),
        data(
            "a reference sharing no label",
            AccuracyInput::new(emb(6, 4, plain), labels())
                .with_reference(emb(3, 4, plain), vec![7, 8, 9]),
            true,
        ),
        contract(
            "query labels of the wrong length",
            AccuracyInput::new(emb(6, 4, plain), vec![0, 1]),
            &["query_labels"],
        ),
        contract(
            "reference labels of the wrong length",
            AccuracyInput::new(emb(6, 4, plain), labels())
                .with_reference(emb(3, 4, plain), vec![0]),
            &["reference_labels"],
        ),
        contract(
            "a reference of another width",
            AccuracyInput::new(emb(6, 4, plain), labels())
                .with_reference(emb(3, 5, plain), vec![0, 1, 2]),
            &["reference"],
        ),
        contract(
            "a reference without labels",
            {
                let mut input = AccuracyInput::new(emb(6, 4, plain), labels());
                input.reference = Some(emb(3, 4, plain));
                input
            },
            &["reference_labels"],
        ),
        contract(
            "reference labels without a reference",
            {
                let mut input = AccuracyInput::new(emb(6, 4, plain), labels());
                input.reference_labels = Some(Labels::new(vec![0, 1, 2]));
                input
            },
            &["reference"],
        ),
        contract(
            "label rows of different widths",
            {
                let rows = [vec![0, 1], vec![0, 1], vec![1, 1]];
                AccuracyInput::new(
                    emb(3, 4, plain),
                    Labels::from_rows(&rows).unwrap_or_else(|e| panic!("{e}")),
                )
                .with_reference(emb(3, 4, plain), vec![0, 1, 2])
            },
            &["reference_labels"],
        ),
        contract(
            "ref_includes_query with another reference",
            AccuracyInput::new(emb(6, 4, plain), labels())
                .with_reference(emb(6, 4, |_, v| v + 1.0), labels())
                .with_ref_includes_query(true),
            &["ref_includes_query"],
        ),
        contract(
            "include naming an unknown metric",
            AccuracyInput::new(emb(6, 4, plain), labels()).with_include(vec!["accuracy".into()]),
            &["include"],
        ),
    ]
}

fn calculators() -> Vec<(&'static str, AccuracyCalculatorConfig)> {
    vec![
        (
            "AccuracyCalculator(k=None)",
            AccuracyCalculatorConfig::new(),
        ),
        (
            "AccuracyCalculator(k=100)",
            AccuracyCalculatorConfig::new().with_k(AccuracyK::Count(100)),
        ),
        (
            "AccuracyCalculator(k=max_bin_count)",
            AccuracyCalculatorConfig::new().with_k(AccuracyK::MaxBinCount),
        ),
        (
            "AccuracyCalculator(avg_of_avgs)",
            AccuracyCalculatorConfig::new().with_avg_of_avgs(true),
        ),
    ]
}

const RETRIEVAL: [&str; 5] = [
    "precision_at_1",
    "r_precision",
    "mean_average_precision_at_r",
    "mean_average_precision",
    "mean_reciprocal_rank",
];

fn accuracy(
    config: &AccuracyCalculatorConfig,
    case: AccCase,
) -> Result<Result<(), String>, PmlError> {
    let acc = config.try_init()?.get_accuracy(case.input)?;
    for (name, value) in &acc {
        let nan_allowed = case.lone && RETRIEVAL.contains(&name.as_str());
        if let Some(v) = value.to_vec().into_iter().find(|v| !v.is_finite())
            && !(nan_allowed && v.is_nan())
        {
            return Ok(Err(format!("{name} = {v}")));
        }
    }
    Ok(Ok(()))
}

/// Every neighbour list has `min(k, m)` entries, each a reference row.
fn check_neighbors(nn: &Neighbors, n: usize, m: usize, k: usize) -> Result<(), String> {
    // No query has no neighbour list: any `k` is right then.
    if nn.n != n || (n > 0 && nn.k != k.min(m)) {
        return Err(format!(
            "{} x {} neighbours, expected {n} x {}",
            nn.n,
            nn.k,
            k.min(m)
        ));
    }
    match nn.indices.iter().find(|&&i| i >= m) {
        Some(i) => Err(format!("neighbour {i} of a reference of {m} rows")),
        None => Ok(()),
    }
}

struct KnnCase {
    name: &'static str,
    query: Tensor<Ib, 2>,
    reference: Tensor<Ib, 2>,
    k: usize,
    expect: Expect,
}

fn knn_cases() -> Vec<KnnCase> {
    let case = |name, query, reference, k| KnnCase {
        name,
        query,
        reference,
        k,
        expect: Expect::Data,
    };
    vec![
        case(
            "k larger than the reference",
            emb(5, 4, plain),
            emb(3, 4, plain),
            10,
        ),
        case("k zero", emb(5, 4, plain), emb(3, 4, plain), 0),
        case(
            "a reference of one row",
            emb(5, 4, plain),
            emb(1, 4, plain),
            3,
        ),
        case("an empty reference", emb(5, 4, plain), emb(0, 4, plain), 3),
        case("no queries", emb(0, 4, plain), emb(3, 4, plain), 2),
        case(
            "equal rows (ties)",
            emb(5, 4, |i, _| (i % 4) as f32),
            emb(5, 4, |i, _| (i % 4) as f32),
            3,
        ),
        case(
            "NaN in the queries",
            emb(5, 4, |i, v| if i == 6 { f32::NAN } else { v }),
            emb(4, 4, plain),
            2,
        ),
        case(
            "inf in the reference",
            emb(5, 4, plain),
            emb(4, 4, |i, v| if i == 6 { f32::INFINITY } else { v }),
            2,
        ),
        case(
            "large values (1e20)",
            emb(5, 4, |_, v| v * 1e20),
            emb(4, 4, |_, v| v * 1e20),
            2,
        ),
        KnnCase {
            expect: Expect::Contract(&["query", "width"]),
            ..case(
                "a reference of another width",
                emb(5, 4, plain),
                emb(3, 5, plain),
                2,
            )
        },
    ]
}

fn knns() -> Vec<(String, KnnConfig)> {
    let mut out = Vec::new();
    // `TopKSelection::Device` needs a backend with `argtopk` (not ndarray's): CPU runs select on
    // the host.
    for metric in [KnnMetric::L2, KnnMetric::Cosine, KnnMetric::InnerProduct] {
        for selection in [TopKSelection::Auto, TopKSelection::Host] {
            let config = KnnConfig::new()
                .with_metric(metric)
                .with_selection(selection)
                .with_query_batch_size(2)
                .with_reference_batch_size(3)
                .with_progress(false);
            out.push((format!("Knn({metric:?}, {selection:?})"), config));
        }
    }
    out
}

fn knn_call(knn: &Knn, case: &KnnCase, self_search: bool) -> Result<Result<(), String>, PmlError> {
    let (n, m) = (case.query.dims()[0], case.reference.dims()[0]);
    if self_search {
        let nn = knn.search_self(case.query.clone(), case.k)?;
        return Ok(check_neighbors(&nn, n, n, case.k));
    }
    let nn = knn.search(case.query.clone(), case.reference.clone(), case.k)?;
    Ok(check_neighbors(&nn, n, m, case.k))
}

fn index_rows(report: &mut Report) {
    let entry = "EmbeddingIndex";
    report.check(
        format!("{entry}::search"),
        "an empty index",
        Expect::Data,
        || {
            let index = EmbeddingIndex::<Ib>::new(KnnConfig::new().try_init()?);
            let nn = index.search(emb(2, 4, plain), 3)?;
            Ok(check_neighbors(&nn, 2, 0, 3))
        },
    );
    report.check(
        format!("{entry}::add"),
        "rows of another width",
        Expect::Contract(&["width", "embeddings"]),
        || {
            let mut index = EmbeddingIndex::<Ib>::new(KnnConfig::new().try_init()?);
            index.add(emb(3, 4, plain));
            index.add(emb(2, 5, plain));
            Ok(Ok(()))
        },
    );
    report.check(
        format!("{entry}::search"),
        "a query of another width",
        Expect::Contract(&["query", "width"]),
        || {
            let mut index = EmbeddingIndex::<Ib>::new(KnnConfig::new().try_init()?);
            index.build(emb(3, 4, plain));
            let nn = index.search(emb(2, 5, plain), 1)?;
            Ok(check_neighbors(&nn, 2, 3, 1))
        },
    );
    for (name, bytes) in [
        ("a missing file", None),
        ("an empty file", Some(Vec::new())),
        ("a file of garbage", Some(b"\x00\x01garbage\xff".to_vec())),
    ] {
        report.check(format!("{entry}::load"), name, Expect::Data, || {
            let dir = std::env::temp_dir().join(format!("pml-reliability-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| PmlError::invalid_input("dir", e.to_string()))?;
            let path = dir.join("index.bin");
            let _ = std::fs::remove_file(&path);
            if let Some(b) = bytes {
                std::fs::write(&path, b)
                    .map_err(|e| PmlError::invalid_input("path", e.to_string()))?;
            }
            let index = EmbeddingIndex::<Ib>::load(
                &path,
                KnnConfig::new().try_init()?,
                &Default::default(),
            )?;
            Ok(Err(format!(
                "loaded an index of {} rows from {name}",
                index.len()
            )))
        });
    }
}

pub(crate) fn run(report: &mut Report) {
    for (name, config) in calculators() {
        for case in acc_cases() {
            let (input, expect) = (case.name, case.expect);
            report.check(format!("{name}::get_accuracy"), input, expect, || {
                accuracy(&config, case)
            });
        }
    }
    report.check(
        "AccuracyCalculatorConfig::try_init",
        "k = 0",
        Expect::Contract(&["k"]),
        || {
            AccuracyCalculatorConfig::new()
                .with_k(AccuracyK::Count(0))
                .try_init()
                .map(|_| Ok(()))
        },
    );
    report.check(
        "KnnConfig::try_init",
        "query_batch_size = 0",
        Expect::Contract(&["query_batch_size"]),
        || {
            KnnConfig::new()
                .with_query_batch_size(0)
                .try_init()
                .map(|_| Ok(()))
        },
    );
    for (name, config) in knns() {
        let knn = config.init();
        for case in knn_cases() {
            report.check(format!("{name}::search"), case.name, case.expect, || {
                knn_call(&knn, &case, false)
            });
            report.check(
                format!("{name}::search_self"),
                case.name,
                case.expect,
                || knn_call(&knn, &case, true),
            );
        }
    }
    index_rows(report);
}
