"""Generate parity cases (testdata/parity/FORMAT.md) with pytorch-metric-learning.

A second, independent set of golden cases (distances, losses, miners, AccuracyCalculator) with
other seeds, shapes and parameter values, to check that the parity runner builds everything from
each case's spec. Needs torch, pytorch-metric-learning and faiss-cpu (the AccuracyCalculator's
kNN), never needed by the tests or CI:

    python3 -m venv venv && venv/bin/pip install torch pytorch-metric-learning faiss-cpu
    venv/bin/python tools/gen_parity_cases.py --seed 7 --out /tmp/parity-alt
    cargo xtask parity --cases /tmp/parity-alt
"""

import argparse
import json
import os

import torch
from pytorch_metric_learning import distances, losses, miners, reducers, regularizers
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

torch.set_default_dtype(torch.float64)


def tensor(t):
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


def build(module, spec):
    if spec is None:
        return None
    cls = getattr(module, spec["name"])
    params = dict(spec.get("params", {}))
    if "reducer" in params:
        params["reducer"] = build(reducers, params["reducer"])
    if "weights" in params:  # ClassWeightedReducer takes a tensor; the spec holds a list
        params["weights"] = torch.tensor(params["weights"])
    return cls(**params)


def build_miner(spec):
    params = dict(spec.get("params", {}))
    if "distance" in spec:
        params["distance"] = build(distances, spec["distance"])
    return getattr(miners, spec["name"])(**params)


def build_loss(spec):
    kwargs = dict(spec.get("params", {}))
    # Wrappers hold nested specs.
    if "loss" in kwargs:
        kwargs["loss"] = build_loss(kwargs["loss"])
    if "losses" in kwargs:
        kwargs["losses"] = [build_loss(s) for s in kwargs["losses"]]
    if "miner" in kwargs:
        kwargs["miner"] = build_miner(kwargs["miner"])
    for slot, module in [
        ("distance", distances),
        ("reducer", reducers),
        ("embedding_regularizer", regularizers),
    ]:
        if slot in spec:
            kwargs[slot] = build(module, spec[slot])
    if "embedding_reg_weight" in spec:
        kwargs["embedding_reg_weight"] = spec["embedding_reg_weight"]
    return getattr(losses, spec["name"])(**kwargs)


def labels_for(n, classes, gen):
    return torch.randint(0, classes, (n,), generator=gen)


def call(value, inputs, leaves):
    """One call of a loss case: `value` backpropagated, with the gradients of `leaves` (name →
    tensor; zeros for a leaf the loss does not reach)."""
    value.backward()
    grad = {k: tensor(v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in leaves.items()}
    return {"inputs": inputs, "expected": {"loss": value.item(), "grad": grad}}


def loss_entry(case_id, spec, calls, parameters=None, **extra):
    return {"id": case_id, "kind": "loss", "spec": spec, "parameters": parameters or {}, "calls": calls,
            "tolerance": {"rtol": 1e-3, "atol": 1e-5}, **extra}


def loss_case(case_id, spec, gen, n, d, classes, ref=None, indices=None):
    emb = torch.randn(n, d, generator=gen).requires_grad_()
    labels = labels_for(n, classes, gen)
    inputs = {"embeddings": tensor(emb), "labels": labels.tolist()}
    call_kwargs = {}
    grads = {"embeddings": emb}
    if ref is not None:
        ref_emb = torch.randn(ref, d, generator=gen).requires_grad_()
        ref_labels = labels_for(ref, classes, gen)
        inputs.update(ref_emb=tensor(ref_emb), ref_labels=ref_labels.tolist())
        call_kwargs.update(ref_emb=ref_emb, ref_labels=ref_labels)
        grads["ref_emb"] = ref_emb
    if indices is not None:
        kind, k = indices
        m = ref if ref is not None else n
        lists = [torch.randint(0, n if i in (0, 2) and kind == "pairs" or i == 0 else m, (k,), generator=gen)
                 for i in range(4 if kind == "pairs" else 3)]
        inputs["indices_tuple"] = {kind: [x.tolist() for x in lists]}
        call_kwargs["indices_tuple"] = tuple(lists)
    try:
        loss_fn = build_loss(spec)
        value = loss_fn(emb, labels, **call_kwargs)
    except Exception as e:  # PML refuses the configuration
        return {"id": case_id, "kind": "loss", "spec": spec, "calls": [],
                "error": f"{type(e).__name__}: {e}"}
    # Trainable tensors (W, proxies, fc, beta, ...) under PML's attribute names.
    weights = dict(loss_fn.named_parameters())
    grads.update(weights)
    return loss_entry(case_id, spec, [call(value, inputs, grads)],
                      {k: tensor(v) for k, v in weights.items()})


def clustered_case(case_id, loss_spec, gen, n, d, classes, miner_spec=None):
    """A loss on clustered data; with `miner_spec`, on the tuples of that miner run on the same
    inputs (the case's top-level `miner`)."""
    emb, labels = clustered(n, d, classes, gen, 0.7)
    emb.requires_grad_()
    args = [emb, labels]
    extra = {}
    if miner_spec is not None:
        args.append(build_miner(miner_spec)(emb, labels))
        extra["miner"] = miner_spec
    value = build_loss(loss_spec)(*args)
    inputs = {"embeddings": tensor(emb), "labels": labels.tolist()}
    return loss_entry(case_id, loss_spec, [call(value, inputs, {"embeddings": emb})], **extra)


def self_supervised_case(case_id, spec, gen, n, d):
    emb = torch.randn(n, d, generator=gen).requires_grad_()
    ref = (emb.detach() + 0.3 * torch.randn(n, d, generator=gen)).requires_grad_()
    value = build_loss(spec)(emb, ref)
    inputs = {"embeddings": tensor(emb), "ref_emb": tensor(ref)}
    return loss_entry(case_id, spec, [call(value, inputs, {"embeddings": emb, "ref_emb": ref})])


def memory_case(case_id, spec, gen, n, classes, calls):
    """Several calls on one CrossBatchMemory: its queue carries over."""
    loss_fn = build_loss(spec)
    out = []
    for _ in range(calls):
        emb = torch.randn(n, spec["params"]["embedding_size"], generator=gen).requires_grad_()
        labels = labels_for(n, classes, gen)
        inputs = {"embeddings": tensor(emb), "labels": labels.tolist()}
        out.append(call(loss_fn(emb, labels), inputs, {"embeddings": emb}))
    return loss_entry(case_id, spec, out)


def wrapper_cases(gen):
    out = []
    pairs = [
        ({"name": "TripletMarginLoss", "params": {"margin": 0.2}},
         {"name": "MultiSimilarityMiner", "params": {"epsilon": 0.2}}),
        ({"name": "ContrastiveLoss", "params": {"pos_margin": 0.1, "neg_margin": 0.6}},
         {"name": "PairMarginMiner", "params": {"pos_margin": 0.3, "neg_margin": 0.6}}),
        ({"name": "TripletMarginLoss", "params": {"margin": 0.05}},
         {"name": "TripletMarginMiner", "params": {"margin": 0.3, "type_of_triplets": "semihard"}}),
        ({"name": "MultiSimilarityLoss", "params": {}},
         {"name": "MultiSimilarityMiner", "params": {"epsilon": 0.05}}),
        ({"name": "NTXentLoss", "params": {"temperature": 0.15}},
         {"name": "BatchHardMiner", "params": {}}),
        ({"name": "CircleLoss", "params": {}},
         {"name": "BatchEasyHardMiner", "params": {"pos_strategy": "hard", "neg_strategy": "semihard"}}),
    ]
    for i, (loss_spec, miner_spec) in enumerate(pairs):
        out.append(clustered_case(f"alt-wrappers/mined-{i}-{loss_spec['name']}-{miner_spec['name']}",
                                  loss_spec, gen, 24 + 4 * i, 8, 4, miner_spec))
    for i, (inner, symmetric) in enumerate([({"name": "TripletMarginLoss", "params": {"margin": 0.3}}, True),
                                            ({"name": "NTXentLoss", "params": {"temperature": 0.3}}, False),
                                            ({"name": "ContrastiveLoss", "params": {}}, True)]):
        spec = {"name": "SelfSupervisedLoss", "params": {"loss": inner, "symmetric": symmetric}}
        out.append(self_supervised_case(f"alt-wrappers/self-supervised-{i}-{inner['name']}", spec, gen,
                                        16 + 4 * i, 8))
    spec = {"name": "MultipleLosses", "params": {
        "losses": [{"name": "MultiSimilarityLoss", "params": {"alpha": 1.5}},
                   {"name": "TripletMarginLoss", "params": {"margin": 0.3}}], "weights": [0.7, 1.8]}}
    out.append(clustered_case("alt-wrappers/multiple", spec, gen, 26, 8, 4))
    for i, (inner, size, miner) in enumerate([
            ({"name": "ContrastiveLoss", "params": {"neg_margin": 0.8}}, 30, None),
            ({"name": "NTXentLoss", "params": {"temperature": 0.2}}, 50,
             {"name": "MultiSimilarityMiner", "params": {"epsilon": 0.2}})]):
        params = {"loss": inner, "embedding_size": 8, "memory_size": size}
        if miner is not None:
            params["miner"] = miner
        spec = {"name": "CrossBatchMemory", "params": params}
        out.append(memory_case(f"alt-wrappers/memory-{i}-{inner['name']}", spec, gen, 20, 4, 3))
    return out


def distance_cases(gen):
    out = []
    specs = [
        {"name": "LpDistance", "params": {"p": 3, "normalize_embeddings": False}},
        {"name": "LpDistance", "params": {"power": 3}},
        {"name": "LpDistance", "params": {"p": 1}},
        {"name": "CosineSimilarity", "params": {"power": 2}},
        {"name": "DotProductSimilarity", "params": {"normalize_embeddings": False, "power": 2}},
        {"name": "SNRDistance", "params": {"normalize_embeddings": False}},
    ]
    for i, spec in enumerate(specs):
        q = torch.randn(7 + i, 5, generator=gen)
        r = torch.randn(9, 5, generator=gen)
        dist = build(distances, spec)
        out.append({"id": f"alt-distances/{i}-{spec['name']}", "kind": "distance", "spec": spec,
                    "inputs": {"query": tensor(q), "reference": tensor(r)},
                    "expected": {"matrix": tensor(dist(q, r)), "self_matrix": tensor(dist(q))},
                    "tolerance": {"rtol": 1e-4, "atol": 1e-6}})
    return out


def clustered(n, d, classes, gen, spread):
    """Points around one random center per class (labels drawn at random), `spread` apart."""
    labels = labels_for(n, classes, gen)
    centers = torch.randn(classes, d, generator=gen) * spread
    return centers[labels] + torch.randn(n, d, generator=gen), labels


def miner_cases(gen):
    specs = [
        ({"name": "MultiSimilarityMiner", "params": {"epsilon": 0.05}}, False),
        ({"name": "MultiSimilarityMiner", "params": {"epsilon": 0.3},
          "distance": {"name": "LpDistance", "params": {}}}, False),
        ({"name": "PairMarginMiner", "params": {"pos_margin": 0.1, "neg_margin": 0.6}}, False),
        ({"name": "PairMarginMiner", "params": {"pos_margin": 0.5, "neg_margin": 0.3},
          "distance": {"name": "CosineSimilarity", "params": {}}}, False),
        ({"name": "TripletMarginMiner", "params": {"margin": 0.1, "type_of_triplets": "semihard"}}, False),
        ({"name": "TripletMarginMiner", "params": {"margin": 0.3, "type_of_triplets": "hard"},
          "distance": {"name": "CosineSimilarity", "params": {}}}, False),
        ({"name": "BatchHardMiner", "params": {}, "distance": {"name": "CosineSimilarity", "params": {}}}, False),
        ({"name": "BatchEasyHardMiner", "params": {"pos_strategy": "easy", "neg_strategy": "semihard"}}, False),
        ({"name": "AngularMiner", "params": {"angle": 30}}, False),
        ({"name": "HDCMiner", "params": {"filter_percentage": 0.3}}, True),
    ]
    out = []
    for i, (spec, unordered) in enumerate(specs):
        n, d, classes = 24 + 4 * (i % 3), 8 + 2 * (i % 2), 3 + i % 4
        emb, labels = clustered(n, d, classes, gen, 1.0)
        miner = build_miner(spec)
        inputs = {"embeddings": tensor(emb), "labels": labels.tolist()}
        args = [emb, labels]
        if i % 4 == 1 and spec["name"] in ("PairMarginMiner", "TripletMarginMiner"):
            ref, ref_labels = clustered(n + 9, d, classes, gen, 1.0)
            inputs.update(ref_emb=tensor(ref), ref_labels=ref_labels.tolist())
            args += [ref, ref_labels]
        mined = [x.tolist() for x in miner(*args)]
        key = "pairs" if len(mined) == 4 else "triplets"
        out.append({"id": f"alt-miners/{i}-{spec['name']}", "kind": "miner", "spec": spec,
                    "inputs": inputs, "expected": {key: mined},
                    "tolerance": {"min_jaccard": 0.99, "unordered_pairs": unordered}})
    return out


def accuracy_cases(gen):
    metrics = ["precision_at_1", "r_precision", "mean_average_precision_at_r",
               "mean_average_precision", "mean_reciprocal_rank"]
    settings = [
        (None, False, False, False),
        ("max_bin_count", False, False, True),
        (5, False, False, True),
        (None, True, False, False),
        (None, False, True, False),
        (11, True, False, True),
    ]
    out = []
    for i, (k, avg_of_avgs, per_class, same_source) in enumerate(settings):
        n, d, classes = 150 + 40 * i, 6 + i % 3, 4 + i
        query, query_labels = clustered(n, d, classes, gen, 1.5)
        if same_source:
            reference, reference_labels = query, query_labels
        else:
            # Around the query's class means, so that the classes match.
            reference_labels = labels_for(n + 60, classes, gen)
            means = torch.stack([query[query_labels == c].mean(0) if (query_labels == c).any()
                                 else torch.zeros(d) for c in range(classes)])
            reference = means[reference_labels] + torch.randn(n + 60, d, generator=gen)
        calc = AccuracyCalculator(include=tuple(metrics), k=k, avg_of_avgs=avg_of_avgs,
                                  return_per_class=per_class, device=torch.device("cpu"))
        got = calc.get_accuracy(query.float(), query_labels, reference.float(), reference_labels,
                                ref_includes_query=same_source)
        expected = {m: (list(map(float, v)) if per_class else float(v)) for m, v in got.items()}
        out.append({"id": f"alt-accuracy/{i}", "kind": "accuracy",
                    "spec": {"include": metrics, "exclude": [], "k": k, "avg_of_avgs": avg_of_avgs,
                             "return_per_class": per_class},
                    "inputs": {"query": tensor(query.float().double()), "query_labels": query_labels.tolist(),
                               "reference": tensor(reference.float().double()),
                               "reference_labels": reference_labels.tolist(),
                               "ref_includes_query": same_source},
                    "expected": expected, "tolerance": {"atol": 0.001}})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(args.seed)
    # The losses with trainable weights draw them from torch's global generator.
    torch.manual_seed(args.seed)
    cases = []
    plain = [
        {"name": "ContrastiveLoss", "params": {"pos_margin": 0.2, "neg_margin": 0.7}},
        {"name": "ContrastiveLoss", "params": {"neg_margin": 0.5},
         "distance": {"name": "DotProductSimilarity", "params": {}}},
        {"name": "ContrastiveLoss", "params": {}, "distance": {"name": "SNRDistance", "params": {}}},
        {"name": "TripletMarginLoss", "params": {"margin": 0.3}},
        {"name": "TripletMarginLoss", "params": {"margin": 0.1, "swap": True, "smooth_loss": True}},
        {"name": "TripletMarginLoss", "params": {"margin": 0.4},
         "distance": {"name": "LpDistance", "params": {"p": 1}}},
        {"name": "TripletMarginLoss", "params": {"margin": 0.2},
         "distance": {"name": "CosineSimilarity", "params": {}}, "reducer": {"name": "MeanReducer", "params": {}}},
    ]
    for i, spec in enumerate(plain):
        cases.append(loss_case(f"alt-losses/{i}-{spec['name']}", spec, gen, 20 + 2 * i, 8, 4))
    tuple_losses = [
        ("AngularLoss", {"alpha": 35}),
        ("CircleLoss", {"m": 0.3, "gamma": 60}),
        ("FastAPLoss", {"num_bins": 8}),
        ("GeneralizedLiftedStructureLoss", {"neg_margin": 0.8, "pos_margin": 0.1}),
        ("InstanceLoss", {"gamma": 32}),
        ("IntraPairVarianceLoss", {"pos_eps": 0.02, "neg_eps": 0.03}),
        ("LiftedStructureLoss", {"neg_margin": 0.9, "pos_margin": 0.1}),
        ("MarginLoss", {"margin": 0.3, "nu": 0.0, "beta": 1.0}),
        ("MarginLoss", {"margin": 0.1, "nu": 0.05, "beta": 0.8, "learn_beta": True, "num_classes": 4}),
        ("MultiSimilarityLoss", {"alpha": 3, "beta": 40, "base": 0.4}),
        ("NCALoss", {"softmax_scale": 2}),
        ("NPairsLoss", {}),
        ("NTXentLoss", {"temperature": 0.2}),
        ("SignalToNoiseRatioContrastiveLoss", {"pos_margin": 0.1, "neg_margin": 0.8}),
        ("SupConLoss", {"temperature": 0.2}),
        ("TupletMarginLoss", {"margin": 4.0, "scale": 32}),
    ]
    for i, (name, params) in enumerate(tuple_losses):
        spec = {"name": name, "params": params}
        cases.append(loss_case(f"alt-tuple-losses/{i}-{name}", spec, gen, 18 + i % 3 * 4, 6 + i % 2 * 2, 4))
    classes, width = 4, 8
    weight_losses = [
        ("ArcFaceLoss", {"margin": 20.0, "scale": 30}),
        ("CosFaceLoss", {"margin": 0.2, "scale": 20}),
        ("LargeMarginSoftmaxLoss", {"margin": 3, "scale": 2}),
        ("NormalizedSoftmaxLoss", {"temperature": 0.1}),
        ("ProxyAnchorLoss", {"margin": 0.2, "alpha": 16}),
        ("ProxyNCALoss", {"softmax_scale": 3}),
        ("SoftTripleLoss", {"centers_per_class": 3, "la": 10, "gamma": 0.2, "margin": 0.02}),
        ("SphereFaceLoss", {"margin": 3}),
        ("SubCenterArcFaceLoss", {"sub_centers": 2, "margin": 25.0, "scale": 40}),
    ]
    for i, (name, params) in enumerate(weight_losses):
        spec = {"name": name, "params": {"num_classes": classes, "embedding_size": width, **params}}
        cases.append(loss_case(f"alt-weight-losses/{i}-{name}", spec, gen, 20 + 2 * i, width, classes))
    spec = {"name": "P2SGradLoss", "params": {"descriptors_dim": width, "num_classes": classes}}
    cases.append(loss_case("alt-weight-losses/P2SGradLoss", spec, gen, 22, width, classes))
    for name, params in [("ThresholdReducer", {"high": 0.3}), ("SumReducer", {}),
                         ("PerAnchorReducer", {"reducer": {"name": "SumReducer", "params": {}}}),
                         ("ClassWeightedReducer", {"weights": [0.3, 1.0, 2.0, 0.5]})]:
        for loss in ["ContrastiveLoss", "TripletMarginLoss"]:
            spec = {"name": loss, "params": {}, "reducer": {"name": name, "params": params}}
            cases.append(loss_case(f"alt-reducers/{name}/{loss}", spec, gen, 18, 6, 4))
    for reg, params, w in [("LpRegularizer", {"p": 1, "power": 2}, 0.2), ("ZeroMeanRegularizer", {}, 1.5)]:
        for loss in ["ContrastiveLoss", "TripletMarginLoss"]:
            spec = {"name": loss, "params": {}, "embedding_regularizer": {"name": reg, "params": params},
                    "embedding_reg_weight": w}
            cases.append(loss_case(f"alt-regularizers/{reg}/{loss}", spec, gen, 16, 6, 3))
    for loss in ["ContrastiveLoss", "TripletMarginLoss"]:
        spec = {"name": loss, "params": {}}
        cases.append(loss_case(f"alt-ref/{loss}", spec, gen, 12, 6, 3, ref=25))
        cases.append(loss_case(f"alt-pairs/{loss}", spec, gen, 14, 6, 3, indices=("pairs", 12)))
        cases.append(loss_case(f"alt-triplets/{loss}", spec, gen, 14, 6, 3, indices=("triplets", 10)))
    cases += wrapper_cases(gen)
    os.makedirs(args.out, exist_ok=True)
    for kind, items in [("distance", distance_cases(gen)), ("loss", cases),
                        ("miner", miner_cases(gen)), ("accuracy", accuracy_cases(gen))]:
        with open(os.path.join(args.out, f"{kind}.json"), "w") as f:
            json.dump({"generator": "tools/gen_parity_cases.py", "seed": args.seed, "cases": items}, f)
    print(f"wrote the distance, loss, miner and accuracy cases to {args.out}")


if __name__ == "__main__":
    main()
