"""Generate parity cases (testdata/parity/FORMAT.md) with pytorch-metric-learning.

A second, independent set of golden cases with other seeds, shapes and parameter values, to
check that the parity runner builds everything from each case's spec. Needs torch and
pytorch-metric-learning (never needed by the tests or CI):

    python3 -m venv venv && venv/bin/pip install torch pytorch-metric-learning
    venv/bin/python tools/gen_parity_cases.py --seed 7 --out /tmp/parity-alt
    cargo xtask parity --cases /tmp/parity-alt
"""

import argparse
import json
import os

import torch
from pytorch_metric_learning import distances, losses, reducers, regularizers

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


def build_loss(spec):
    kwargs = dict(spec.get("params", {}))
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
    value.backward()
    expected = {"loss": value.item(),
                "grad": {k: tensor(v.grad if v.grad is not None else torch.zeros_like(v))
                         for k, v in grads.items()}}
    return {"id": case_id, "kind": "loss", "spec": spec, "parameters": {},
            "calls": [{"inputs": inputs, "expected": expected}],
            "tolerance": {"rtol": 1e-3, "atol": 1e-5}}


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(args.seed)
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
    os.makedirs(args.out, exist_ok=True)
    for kind, items in [("distance", distance_cases(gen)), ("loss", cases)]:
        with open(os.path.join(args.out, f"{kind}.json"), "w") as f:
            json.dump({"generator": "tools/gen_parity_cases.py", "seed": args.seed, "cases": items}, f)
    print(f"wrote {len(cases)} loss cases to {args.out}")


if __name__ == "__main__":
    main()
