#!/usr/bin/env python3
"""Writes golden cases for model-based clustering (MBC) of a LoRA library as microsoft/mttl computes it
(`mttl/models/library/library_transforms.py`: `SVDEmbeddingTransform`, then k-means as in `MBCWithCosSimTransform`):
per expert the flattened LoRA parameters, sparsified at a per-expert quantile of |v|; scikit-learn's randomized
`TruncatedSVD` of the [N, D] matrix; L2-normalised rows (the embeddings); their cosine similarity; k-means labels.
The experts are PEFT LoRA folders (`save_pretrained`) on the tiny BERT of tiny_models.py (random weights, no
downloads) with planted cluster structure.

    python3 Benchmarks/golden/make_mbc_cases.py OUT_DIR     # e.g. Tests/PolyPEFTTests/Resources/golden_mbc

Writes OUT_DIR/<case>/..., OUT_DIR/cases.json and OUT_DIR/README.md. Needs torch, transformers, peft (0.21.2),
safetensors, numpy and scikit-learn (see the README it writes for the versions). Deterministic: fixed seeds, fixed
`random_state`s, and the script re-executes itself with PYTHONHASHSEED=0 (PEFT keeps `target_modules` in a set),
HF_HUB_OFFLINE=1 and one BLAS / OpenMP thread; two runs give byte-identical folders.

Besides writing, the script checks every case (and fails otherwise): the experts reload from their folders to the
same flattened vectors; no |v| is ambiguously close to its threshold (float32 and float64 give the same mask); the
randomized SVD's singular values and similarity match numpy's exact SVD; the embeddings match the exact SVD with
scikit-learn's sign rule; the k-means partition is the global optimum (all partitions enumerated) with a clear gap;
mttl's own float32 path gives the same mask and partition; a permuted flatten order changes nothing; and in the
planted case the planted clusters are recovered exactly.
"""
import os
import sys

_ENV = {"PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
if any(os.environ.get(k) != v for k, v in _ENV.items()):
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **_ENV))

import itertools
import json
import platform
import re
import shutil
import tempfile
import warnings

import numpy as np
import peft
import safetensors
import scipy
import sklearn
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.numpy import save_file
from safetensors.torch import load_file
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from transformers import BertModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_models import bert_config, compact_json, randomize_norms  # noqa: E402

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()

BASE_SEED = 1234  # the BERT base of golden_arrow (its weights do not enter MBC; only its config is written)
R, LORA_ALPHA, TARGETS = 2, 4, ["query", "value"]
# randomized vs exact SVD: singular values (relative, per kept component) and similarity (absolute)
SVD_TOL = 1e-5
# |v| within this relative distance of its threshold counts as "near" (reported; only exact order-statistic hits
# are allowed, see threshold_report)
NEAR_REL = 1e-6
# the best k-means partition's inertia must beat every other partition's by this much (relative)
KMEANS_GAP = 1e-3
# truncation: s_c / s_{c+1} must exceed 1 + this (otherwise the kept subspace is ill-conditioned)
TRUNC_GAP = 0.1
# the largest |entry| of every right singular vector must beat the second largest by this (relative): the sign
# rule of scikit-learn's svd_flip is then well defined
FLIP_GAP = 1e-6

CASES = [
    dict(name="mbc_planted", seed=500, groups=3, per_group=3, noise=0.15, spread=0.0, n_components=64, sparsity_threshold=0.8,
         k=3, random_state=0, assert_planted=True,
         notes="9 experts in 3 planted clusters (center N(0,1) per cluster, expert = center + 0.15 N(0,1)), listed "
               "in a shuffled order; mttl's defaults n_components 64 (> N: scikit-learn keeps N = 9 components) "
               "and sparsity 0.8; k 3."),
    dict(name="mbc_components", seed=600, groups=2, per_group=3, noise=0.5, spread=0.8, n_components=3,
         sparsity_threshold=0.5, k=2, random_state=0, assert_planted=False,
         notes="6 experts, weaker structure (2 groups: center N(0,1); expert = center + 0.8 (t - 1) d + 0.5 N(0,1), "
               "d N(0,1) shared by both groups, t = 0, 1, 2: three signal directions, so the 3 kept components "
               "(< N: a real truncation) are well separated from the noise), listed in a shuffled order; sparsity "
               "0.5; k 2."),
]


# ----------------------------------------------------------------------------------------------------------------
# Experts: PEFT LoRA folders with given parameter values
# ----------------------------------------------------------------------------------------------------------------

def build_base():
    torch.manual_seed(BASE_SEED)
    config = bert_config()
    model = BertModel(config, add_pooling_layer=False).eval()
    randomize_norms(model)
    return model, config


def fresh_base(config, state):
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(state)
    return model.eval()


def lora_layout(config, state):
    """The saved LoRA keys in flatten order (sorted: module paths sorted, lora_A before lora_B) and their shapes."""
    model = get_peft_model(fresh_base(config, state), LoraConfig(r=R, lora_alpha=LORA_ALPHA, target_modules=TARGETS))
    shapes = {n.replace(".default", ""): tuple(p.shape) for n, p in model.named_parameters() if ".lora_" in n}
    return [(k, shapes[k]) for k in sorted(shapes)]


def flatten(tensors, layout):
    """One expert's parameters as one float32 vector: the keys of `layout` in order, each row-major."""
    return np.concatenate([tensors[k].numpy().reshape(-1) for k, _ in layout]).astype(np.float32)


def write_expert(config, state, layout, vector, folder):
    """A PEFT LoRA adapter on a fresh copy of the base whose LoRA parameters are `vector` (flatten order of
    `layout`), written by save_pretrained (model card deleted). Returns its adapter_config.json."""
    torch.manual_seed(0)  # (PEFT's own init, overwritten below)
    model = get_peft_model(fresh_base(config, state), LoraConfig(r=R, lora_alpha=LORA_ALPHA, target_modules=TARGETS))
    params = {n.replace(".default", ""): p for n, p in model.named_parameters() if ".lora_" in n}
    assert sorted(params) == [k for k, _ in layout]
    offset = 0
    with torch.no_grad():
        for k, shape in layout:
            size = int(np.prod(shape))
            params[k].copy_(torch.from_numpy(vector[offset:offset + size].reshape(shape).copy()))
            offset += size
    assert offset == vector.size
    model.eval()
    model.save_pretrained(folder)
    readme = os.path.join(folder, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    assert sorted(os.listdir(folder)) == ["adapter_config.json", "adapter_model.safetensors"], os.listdir(folder)
    with open(os.path.join(folder, "adapter_config.json")) as f:
        cfg = json.load(f)
    assert cfg["base_model_name_or_path"] is None, cfg["base_model_name_or_path"]
    assert cfg["r"] == R and cfg["lora_alpha"] == LORA_ALPHA and sorted(cfg["target_modules"]) == sorted(TARGETS)
    return cfg


def planted_vectors(case, dim):
    """Per group a center N(0,1) [dim]; (if spread) one direction d N(0,1) [dim] shared by all groups; expert
    (group g, member t) = center_g + spread (t - 1) d + noise N(0,1), float32; all drawn from one generator (centers,
    d, then the noise in order g, t). Returns ({name: vector}, {name: group}, listed order (seeded shuffle))."""
    gen = torch.Generator().manual_seed(case["seed"])
    centers = [torch.randn(dim, generator=gen) for _ in range(case["groups"])]
    direction = torch.randn(dim, generator=gen) if case["spread"] else torch.zeros(dim)
    vectors, groups = {}, {}
    for g in range(case["groups"]):
        for t in range(case["per_group"]):
            name = f"c{g}_t{t}"
            v = centers[g] + case["spread"] * (t - 1) * direction + case["noise"] * torch.randn(dim, generator=gen)
            vectors[name] = v.numpy().astype(np.float32)
            groups[name] = g
    names = list(vectors)
    perm = torch.randperm(len(names), generator=torch.Generator().manual_seed(case["seed"] + 1)).tolist()
    return vectors, groups, [names[i] for i in perm]


# ----------------------------------------------------------------------------------------------------------------
# MBC (mttl's steps) and independent checks
# ----------------------------------------------------------------------------------------------------------------

def sparsify(X, q):
    """mttl: thr = np.quantile(|X|, q, axis=1) (linear); entries with |x| <= thr set to 0. Keeps X's dtype."""
    thr = np.quantile(np.abs(X), q, axis=1)
    Y = X.copy()
    Y[np.abs(Y) <= thr.reshape(-1, 1)] = 0.0
    return Y, thr


def truncated_svd(X, n_components, random_state):
    """mttl's TruncatedSVD settings. Returns (the fitted TruncatedSVD, its fit_transform)."""
    svd = TruncatedSVD(n_components=n_components, algorithm="randomized", n_iter=5, n_oversamples=10,
                       power_iteration_normalizer="auto", random_state=random_state, tol=0.0)
    return svd, svd.fit_transform(X)


def normalise(E):
    return E / np.linalg.norm(E, 2, axis=1)[:, None]


def kmeans(points, k, random_state):
    km = KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=random_state).fit(points)
    return km.labels_.astype(np.int64), float(km.inertia_)


def mbc(X, q, n_components, k, random_state):
    """The whole pipeline on X [N, D] in X's dtype: (sparsified, thresholds, svd, unit embeddings, similarity,
    labels, inertia)."""
    Y, thr = sparsify(X, q)
    svd, E = truncated_svd(Y, n_components, random_state)
    U = normalise(E)
    S = U @ U.T
    labels, inertia = kmeans(U, k, random_state)
    return Y, thr, svd, U, S, labels, inertia


def canonical(labels):
    """Labels renumbered by first appearance (a partition's canonical form)."""
    seen = {}
    return [seen.setdefault(int(l), len(seen)) for l in labels]


def partition_inertia(P, labels, k):
    return sum(float(((P[labels == c] - P[labels == c].mean(0)) ** 2).sum()) for c in range(k) if (labels == c).any())


def all_partitions(n, k):
    """Every partition of n items into exactly k non-empty blocks, as restricted growth strings."""
    def rec(prefix, m):
        if len(prefix) == n:
            if m == k:
                yield list(prefix)
            return
        for c in range(min(m + 1, k)):
            yield from rec(prefix + [c], max(m, c + 1))
    return rec([0], 1)


def exhaustive_kmeans(P, k):
    """(best canonical partition, its inertia, the second-best inertia, number of partitions): the global optimum
    of the k-means objective (within-cluster sum of squares) over every partition."""
    scored = sorted((partition_inertia(P, np.array(p), k), p) for p in all_partitions(len(P), k))
    return scored[0][1], scored[0][0], scored[1][0], len(scored)


def threshold_report(A, q, thr):
    """Per expert (rows of A = |v| in float64): entries within NEAR_REL of the threshold, whether the quantile hit an
    order statistic exactly (fractional index 0), and the relative margins of the mask."""
    n = A.shape[1]
    pos = q * (n - 1)
    frac = pos - np.floor(pos)
    out = []
    for a, t in zip(A, thr):
        near = np.abs(a - t) <= NEAR_REL * t
        exact = a == t
        # every near entry must be the exact order statistic the quantile landed on (zeroed by <= in any precision,
        # since numpy's lerp never goes below it); nothing genuinely ambiguous
        assert (near == (exact & (frac == 0))).all(), ("ambiguous threshold", t, a[near])
        kept, zeroed = a[a > t], a[(a < t)]
        out.append(dict(near=int(near.sum()), exact_hits=int(exact.sum()),
                        kept_margin_rel=float((kept.min() - t) / t), zeroed_margin_rel=float((t - zeroed.max()) / t)))
    return out, float(frac)


def flip_rule(Vt):
    """scikit-learn's svd_flip(u_based_decision=False): each row of Vt gets its largest-|.| entry positive. Returns
    (signs, smallest relative gap between the largest and second largest |entry| of a row)."""
    signs, gap = [], 1.0
    for row in Vt:
        a = np.sort(np.abs(row))
        gap = min(gap, float((a[-1] - a[-2]) / a[-1]))
        signs.append(np.sign(row[np.argmax(np.abs(row))]))
    return np.array(signs), gap


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max()
                 / max(float(np.abs(np.asarray(b, np.float64)).max()), 1e-300))


# ----------------------------------------------------------------------------------------------------------------
# One case
# ----------------------------------------------------------------------------------------------------------------

def run_case(case, out_root, tmp_root):
    name = case["name"]
    q, nc, k, rs = case["sparsity_threshold"], case["n_components"], case["k"], case["random_state"]
    d = os.path.join(out_root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

    base, config = build_base()
    state = {kk: v.detach().clone() for kk, v in base.state_dict().items()}
    with open(os.path.join(d, "base_config.json"), "w") as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)
        f.write("\n")
    layout = lora_layout(config, state)
    dim = sum(int(np.prod(s)) for _, s in layout)

    vectors, groups, order = planted_vectors(case, dim)
    tmp = os.path.join(tmp_root, name)
    experts = []
    for e in order:
        rel_dir = f"experts/{e}"
        write_expert(config, state, layout, vectors[e], os.path.join(tmp, rel_dir))
        experts.append({"name": e, "folder": rel_dir, "planted_group": groups[e]})

    # The library as mttl reads it: each expert's file, flattened (float32), in the listed order.
    X32 = np.stack([flatten(load_file(os.path.join(tmp, x["folder"], "adapter_model.safetensors")), layout)
                    for x in experts])
    assert all(np.array_equal(X32[i], vectors[e]) for i, e in enumerate(order)), "flatten round trip"
    N = len(order)
    X = X32.astype(np.float64)

    # ---- the golden result: mttl's steps in float64 (on the float32 weights, exactly upcast) ----
    Y, thr, svd, U, S, labels, inertia = mbc(X, q, nc, k, rs)
    c = U.shape[1]
    assert c == min(nc, N) and svd.components_.shape == (c, dim), (U.shape, svd.components_.shape)
    zero_frac = (Y == 0).sum(1) / dim
    thr_info, frac = threshold_report(np.abs(X), q, thr)
    # the stored float32 thresholds give the same mask
    thr_f32 = thr.astype(np.float32).astype(np.float64)
    assert np.array_equal(np.abs(X) <= thr_f32[:, None], np.abs(X) <= thr[:, None]), "float32 threshold flips"

    # ---- exact SVD (numpy, float64) ----
    Uf, sf, Vtf = np.linalg.svd(Y, full_matrices=False)
    sv_rel = float(np.max(np.abs(svd.singular_values_ - sf[:c]) / sf[:c]))
    assert sv_rel < SVD_TOL, (name, "singular values", sv_rel)
    trunc_ratio = float(sf[c - 1] / sf[c]) if c < len(sf) and sf[c] > 0 else None
    if trunc_ratio is not None:
        assert trunc_ratio > 1 + TRUNC_GAP, (name, "truncation not well defined", trunc_ratio)
    signs, flip_gap = flip_rule(Vtf[:c])
    assert flip_gap > FLIP_GAP, (name, "sign rule near-tie", flip_gap)
    E_exact = Y @ (Vtf[:c] * signs[:, None]).T  # X @ V (what scikit-learn returns), exact, scikit-learn's signs
    U_exact = normalise(E_exact)
    S_exact = U_exact @ U_exact.T
    sim_diff = float(np.abs(S - S_exact).max())
    assert sim_diff < SVD_TOL, (name, "similarity exact vs randomized", sim_diff)
    emb_diff = float(np.abs(U - U_exact).max())
    assert emb_diff < SVD_TOL, (name, "embeddings (with scikit-learn's sign rule)", emb_diff)
    Yn = normalise(Y)
    cos_sparsified = Yn @ Yn.T
    cos_diff = float(np.abs(S - cos_sparsified).max())
    if c == N:  # all components kept: the similarity is the cosine similarity of the sparsified vectors
        assert cos_diff < SVD_TOL, (name, "similarity vs cosine of sparsified vectors", cos_diff)

    # ---- k-means: global optimum by enumeration ----
    best, best_inertia, second_inertia, n_parts = exhaustive_kmeans(U, k)
    assert canonical(labels) == best, (name, "k-means did not find the global optimum", canonical(labels), best)
    assert abs(inertia - best_inertia) <= 1e-9 * max(best_inertia, 1e-12), (name, inertia, best_inertia)
    km_gap = (second_inertia - best_inertia) / second_inertia
    assert km_gap > KMEANS_GAP, (name, "k-means optimum not clear", km_gap)
    planted = canonical([groups[e] for e in order])
    same = np.array([[groups[a] == groups[b] for b in order] for a in order])
    off = ~np.eye(N, dtype=bool)
    within, across = float(S[same & off].mean()), float(S[~same].mean())
    recovered = canonical(labels) == planted
    if case["assert_planted"]:
        assert recovered, (name, "planted clusters not recovered", canonical(labels), planted)

    # ---- mttl's MBCWithCosSimTransform: k-means on the rows of the cosine-similarity matrix ----
    labels_sim, inertia_sim = kmeans(S, k, rs)
    best_sim, best_sim_inertia, second_sim_inertia, _ = exhaustive_kmeans(S, k)
    assert canonical(labels_sim) == best_sim, (name, "k-means on similarity: not the global optimum")
    sorted_idx = sorted(range(N), key=lambda i: order[i])  # mttl clusters experts sorted by name
    labels_sim_sorted, _ = kmeans(S[np.ix_(sorted_idx, sorted_idx)], k, rs)
    back = np.empty(N, np.int64)
    back[sorted_idx] = labels_sim_sorted
    assert canonical(back) == canonical(labels_sim), (name, "similarity k-means depends on the row order")

    # ---- mttl's own dtype: everything in float32 (parameters_to_vector(...).numpy()) ----
    Y32, thr32, svd32, U32, S32, labels32, inertia32 = mbc(X32, q, nc, k, rs)
    assert thr32.dtype == np.float32 and U32.dtype == np.float32
    assert np.array_equal(Y32 == 0, Y == 0), (name, "float32 mask differs")
    assert canonical(labels32) == canonical(labels), (name, "float32 partition differs")
    f32 = {"threshold_rel_diff_max": rel(thr32, thr), "similarity_abs_diff_max": float(np.abs(S32 - S).max()),
           "singular_values_rel_diff_max": float(np.max(np.abs(svd32.singular_values_ - sf[:c]) / sf[:c])),
           "mask_identical": True, "partition_identical": True}

    # ---- the flatten order does not matter (every step is invariant to one permutation of the coordinates) ----
    perm = np.random.default_rng(case["seed"]).permutation(dim)
    _, thr_p, _, U_p, S_p, labels_p, _ = mbc(X[:, perm], q, nc, k, rs)
    perm_diff = float(np.abs(S_p - S).max())
    assert np.array_equal(thr_p, thr) and perm_diff < SVD_TOL and canonical(labels_p) == canonical(labels)

    # ---- write ----
    for x in experts:
        shutil.copytree(os.path.join(tmp, x["folder"]), os.path.join(d, x["folder"]))
    save_file({"vectors": X32, "sparsified": Y.astype(np.float32), "thresholds": thr.astype(np.float32),
               "embeddings": U.astype(np.float32), "similarity": S.astype(np.float32), "labels": labels,
               "singular_values": svd.singular_values_.astype(np.float32)},
              os.path.join(d, "mbc.safetensors"))

    checks = {
        "flatten_round_trip_identical": True,
        "threshold_quantile_index": q * (dim - 1),
        "threshold_quantile_fraction": frac,
        "threshold_near_entries_per_expert": [t["near"] for t in thr_info],
        "threshold_exact_hits_per_expert": [t["exact_hits"] for t in thr_info],
        "threshold_kept_margin_rel_min": min(t["kept_margin_rel"] for t in thr_info),
        "threshold_zeroed_margin_rel_min": min(t["zeroed_margin_rel"] for t in thr_info),
        "threshold_float32_mask_identical": True,
        "mttl_sparsity_assert_passes": bool(np.abs(zero_frac - q).max() < 1e-4),
        "singular_values_rel_diff_max": sv_rel,
        "truncation_ratio_s_c_over_s_c_plus_1": trunc_ratio,
        "similarity_exact_vs_randomized_abs_diff_max": sim_diff,
        "embeddings_exact_with_sklearn_signs_abs_diff_max": emb_diff,
        "sign_rule_gap_rel_min": flip_gap,
        "similarity_vs_cosine_of_sparsified_abs_diff_max": cos_diff,
        "kmeans_inertia": inertia,
        "kmeans_global_optimum_inertia": best_inertia,
        "kmeans_second_best_inertia": second_inertia,
        "kmeans_gap_rel": km_gap,
        "kmeans_partitions_enumerated": n_parts,
        "kmeans_is_global_optimum": True,
        "planted_recovered": recovered,
        "similarity_within_group_mean": within,
        "similarity_across_group_mean": across,
        "kmeans_on_similarity_labels_first_appearance": canonical(labels_sim),
        "kmeans_on_similarity_inertia": inertia_sim,
        "kmeans_on_similarity_gap_rel": (second_sim_inertia - best_sim_inertia) / second_sim_inertia,
        "kmeans_on_similarity_same_partition": canonical(labels_sim) == canonical(labels),
        "mttl_float32_path": f32,
        "flatten_permutation_similarity_abs_diff_max": perm_diff,
        "flatten_permutation_same_thresholds_and_partition": True,
    }
    entry = {
        "name": name,
        "notes": case["notes"],
        "config": {"n_components": nc, "sparsity_threshold": q, "k": k, "random_state": rs,
                   "svd": {"algorithm": "randomized", "n_iter": 5, "n_oversamples": 10,
                           "power_iteration_normalizer": "auto", "tol": 0.0},
                   "kmeans": {"init": "k-means++", "n_init": 10}},
        "generation": {"seed": case["seed"], "groups": case["groups"], "per_group": case["per_group"],
                       "noise": case["noise"], "spread": case["spread"], "shuffle_seed": case["seed"] + 1},
        "experts": experts,
        "expert_order": order,
        "lora": {"r": R, "lora_alpha": LORA_ALPHA, "target_modules": sorted(TARGETS)},
        "flatten_order": [{"key": kk, "shape": list(s)} for kk, s in layout],
        "dim": dim,
        "n_experts": N,
        "components_kept": c,
        "thresholds": [float(t) for t in thr],
        "sparsity_achieved": [float(z) for z in zero_frac],
        "zeroed_per_expert": [int(z) for z in (Y == 0).sum(1)],
        "singular_values": [float(s) for s in svd.singular_values_],
        "singular_values_exact_all": [float(s) for s in sf],
        "labels_sklearn": [int(l) for l in labels],
        "labels_first_appearance": canonical(labels),
        "planted_labels_first_appearance": planted,
        "clusters": [[e for e, l in zip(order, labels) if l == cl] for cl in range(k)],
        "checks": checks,
    }
    size = sum(os.path.getsize(os.path.join(rt, f)) for rt, _, fs in os.walk(d) for f in fs)
    print(f"{name}: {size / 1024:.1f} KB, N {N}, D {dim}, c {c}, checks {json.dumps(checks)}")
    return entry


# ----------------------------------------------------------------------------------------------------------------
# Index and README
# ----------------------------------------------------------------------------------------------------------------



def fmt(v):
    return f"{v:.1e}"


def write_readme(out_root, entries, versions, total_bytes):
    rows, check_rows = [], []
    for e in entries:
        size = sum(os.path.getsize(os.path.join(rt, fn)) for rt, _, fs in os.walk(os.path.join(out_root, e["name"]))
                   for fn in fs)
        cfg, c = e["config"], e["checks"]
        rows.append(f"| `{e['name']}` | {e['n_experts']} | {e['dim']} | {cfg['n_components']} | "
                    f"{e['components_kept']} | {cfg['sparsity_threshold']:g} | {cfg['k']} | "
                    f"{', '.join(e['expert_order'])} | {e['labels_first_appearance']} | {size // 1024} KB |")
        check_rows.append(f"| `{e['name']}` | {fmt(c['singular_values_rel_diff_max'])} | "
                          f"{fmt(c['similarity_exact_vs_randomized_abs_diff_max'])} | "
                          f"{fmt(c['embeddings_exact_with_sklearn_signs_abs_diff_max'])} | "
                          + (f"{c['truncation_ratio_s_c_over_s_c_plus_1']:.2f} | "
                             if c["truncation_ratio_s_c_over_s_c_plus_1"] is not None else "- (c = N) | ")
                          + f"{c['kmeans_inertia']:.6f} | {c['kmeans_gap_rel']:.2f} | "
                          f"{c['threshold_near_entries_per_expert']} | {c['threshold_kept_margin_rel_min']:.1e} / "
                          f"{c['threshold_zeroed_margin_rel_min']:.1e} | {c['mttl_sparsity_assert_passes']} | "
                          f"{c['planted_recovered']} |")
    text = (README.replace("{{VERSIONS}}", ", ".join(f"{k} {v}" for k, v in versions.items()))
            .replace("{{CASES}}", "\n".join(rows))
            .replace("{{CHECKS}}", "\n".join(check_rows))
            .replace("{{FLATTEN}}", "\n".join(f"   - `{x['key']}` {x['shape']}"
                                              for x in entries[0]["flatten_order"]))
            .replace("{{TOTAL_KB}}", str(total_bytes // 1024)))
    with open(os.path.join(out_root, "README.md"), "w") as f:
        f.write(text)


def main(out_root):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out_root, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_root:
        entries = [run_case(case, out_root, tmp_root) for case in CASES]
    versions = {"torch": torch.__version__, "peft": peft.__version__, "transformers": transformers.__version__,
                "safetensors": safetensors.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__,
                "scipy": scipy.__version__, "python": platform.python_version()}
    index = {"versions": versions, "cases": entries}
    with open(os.path.join(out_root, "cases.json"), "w") as f:
        f.write(compact_json(index) + "\n")
    total = sum(os.path.getsize(os.path.join(rt, fn)) for rt, _, fs in os.walk(out_root) for fn in fs
                if os.path.join(rt, fn) != os.path.join(out_root, "README.md"))
    write_readme(out_root, entries, versions, total)
    total = sum(os.path.getsize(os.path.join(rt, fn)) for rt, _, fs in os.walk(out_root) for fn in fs)
    print(f"wrote {out_root} ({total / 1024:.0f} KB)")


README = """# Golden vectors for model-based clustering (MBC) of a LoRA library

Reference results of model-based clustering as microsoft/mttl computes it ("Towards Modular LLMs by Building and
Reusing a Library of LoRAs"; `mttl/models/library/library_transforms.py`: `SVDEmbeddingTransform`, defaults
`n_components` 64 and `sparsity_threshold` 0.8, then k-means as in `MBCWithCosSimTransform`), on libraries of PEFT
LoRA experts with planted cluster structure. One sub-folder per case; `cases.json` is the index (expert order,
config, thresholds, sparsity, singular values, labels, checks).

## Provenance

- {{VERSIONS}}; CPU, one thread.
- Written by `Benchmarks/golden/make_mbc_cases.py`:

      python3 Benchmarks/golden/make_mbc_cases.py Tests/PolyPEFTTests/Resources/golden_mbc

  (`pip install torch==2.13.0 peft==0.21.2 transformers==5.24.0 safetensors==0.8.0 scikit-learn==1.9.1`, CPU wheel
  of torch.) Rerunning gives byte-identical folders: fixed seeds and `random_state`s, and the script re-executes
  itself with `PYTHONHASHSEED=0` (PEFT keeps `target_modules` in a set), `HF_HUB_OFFLINE=1` and one BLAS / OpenMP
  thread. It deletes and rewrites each case folder. Total {{TOTAL_KB}} KB (without this README).

## Cases

| case | N | D | n_components | kept | sparsity | k | expert order (rows) | labels (first appearance) | size |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{{CASES}}

Experts are named `c<g>_t<t>` (planted group g, member t) and listed (= rows of every tensor) in a seeded shuffled
order. Group g has a center `N(0,1)` [D] (all `lora_A` and `lora_B` entries); member t = center + noise `N(0,1)`
(noise 0.15 in `mbc_planted`); in `mbc_components` member t = center + 0.8 (t - 1) d + 0.5 `N(0,1)` with one
direction d `N(0,1)` shared by both groups (three signal directions, so the cut after 3 components is clear:
`truncation_ratio_s_c_over_s_c_plus_1`; the groups are less separated: mean within-group similarity 0.59 against 0.91 in
`mbc_planted`). float32, one generator seeded per case.

## The computation

For experts i = 1..N (rows, in `expert_order`):

1. v_i [D] = the expert's LoRA parameters flattened: module paths sorted (Python string order), per module `lora_A`
   then `lora_B`, each row-major (PEFT layouts: A [r, in], B [out, r]). Here (D = 256, the same for both cases):

{{FLATTEN}}

   The order does not matter: every later step is invariant to one permutation of the D coordinates applied to all
   experts (quantiles, SVD embeddings `X V`, similarities and k-means depend only on the multiset of entries and on
   dot products). The script checks it (a random permutation gives the same thresholds and partition, similarity
   to 1e-15). mttl itself flattens `expert.expert_weights.values()` in its own order and layout (its `lora_a` is
   [in, r]); it gives the same result.
2. thr_i = `np.quantile(|v_i|, sparsity_threshold)` (linear interpolation: sorted s, h = q (D - 1), thr = s[floor h]
   + (h - floor h)(s[floor h + 1] - s[floor h])); entries with |v| <= thr_i are set to 0 (`<=`: the entry equal to
   the threshold is zeroed).
   - `mbc_planted` (q 0.8): h = 0.8 * 255 = 204 exactly, so thr_i IS the order statistic s[204] and that entry is
     zeroed too: 205 of 256 entries are zeroed (sparsity 0.80078), not 204.8. mttl asserts
     `|zeros / D - q| < 1e-4` after sparsifying, which FAILS here (`mttl_sparsity_assert_passes` false): mttl would
     stop with an AssertionError on this library (the assertion assumes a large D). The golden data continues past
     it. This is the only entry near a threshold (one per expert, `threshold_near_entries_per_expert`), and it is
     zeroed in float32 and float64 alike (numpy's interpolation never goes below s[floor h]).
   - `mbc_components` (q 0.5): h = 127.5, thr = the midpoint of s[127] and s[128]; exactly 128 zeroed.
   - No other |v| lies within 1e-6 (relative) of its threshold (margins in the checks table); the stored float32
     thresholds give the same mask as the float64 ones.
3. E = `TruncatedSVD(n_components, algorithm="randomized", n_iter=5, n_oversamples=10,
   power_iteration_normalizer="auto", random_state=0, tol=0.0).fit_transform(X)` for X = the sparsified [N, D];
   embeddings e_i = E_i / |E_i|.
   - n_components > N (`mbc_planted`: 64 > 9): scikit-learn neither fails nor warns (it only requires
     n_components <= D); its randomized SVD works on X^T (N < D), whose rank is at most N, and the returned
     `components_` has min(n_components, N) = N rows: E is [N, N] (`embeddings` [9, 9], not [9, 64]). With all N
     components kept, E E^T = X X^T, so the similarity equals the cosine similarity of the sparsified vectors
     (checked: `similarity_vs_cosine_of_sparsified_abs_diff_max`).
   - n_components + n_oversamples >= N in both cases, so the randomized range finder spans the whole row space and
     the "randomized" SVD is exact up to rounding: singular values and similarity agree with numpy's exact SVD to
     ~1e-15, and `random_state` does not matter (mttl's standalone `SVDEmbeddingTransform` defaults to
     `random_state=None`; `MBCWithCosSimTransform` passes 42).
   - scikit-learn returns X V (not U S; the same here since the SVD is exact). Signs per component are arbitrary in
     principle; scikit-learn's rule (`svd_flip(u_based_decision=False)`) makes the largest-|.| entry of each right
     singular vector (row of `components_`, a [D] vector) positive. The stored `embeddings` follow that rule and
     equal the exact SVD with that rule applied (checked, and the rule is not a near-tie: `sign_rule_gap_rel_min`).
     An implementation that works from the Gram matrix X X^T gets each component up to sign; compare the
     embeddings per column up to sign, or through `similarity`, which does not depend on signs.
4. similarity = e e^T (mttl: `sklearn.metrics.pairwise.cosine_similarity` of the unit embeddings, the same).
5. labels = `KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=0).fit(e).labels_` (`labels`, scikit-learn's
   numbering; the numbering is arbitrary, compare partitions: `labels_first_appearance` renumbers by first
   appearance). The partition is checked to be the GLOBAL optimum of the k-means objective (every partition of the N
   experts into k non-empty clusters enumerated), with a clear gap to the second best, so any k-means that finds the
   optimum gives it. `inertia` = scikit-learn's `inertia_` (sum of squared distances to the cluster means).
   - mttl's `MBCWithCosSimTransform` (defaults k 10, random_state 42) runs KMeans on the ROWS OF THE
     COSINE-SIMILARITY MATRIX (N points in R^N), not on the embeddings, with the experts sorted by name. The script
     also runs that variant (on the same similarity, random_state 0): `kmeans_on_similarity_*` in the checks (its
     partition, global optimality, and that sorting the experts by name does not change it).
   - mttl computes in float32 (`parameters_to_vector(...).numpy()`; numpy and scikit-learn keep float32). The golden
     data is computed in float64 from the float32 weights (exactly upcast); the float32 path gives the same mask and
     partition (differences under `mttl_float32_path`).

LoRA scaling (`lora_alpha / r`) plays no part: mttl flattens the raw factors.

Checks (all enforced by the script; numbers in `cases.json` under `checks`):

| case | singular values rel | similarity exact vs randomized | embeddings vs exact (sklearn signs) | s_c / s_c+1 | k-means inertia | k-means gap | entries near threshold per expert | kept / zeroed margin | mttl's sparsity assert | planted recovered |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{{CHECKS}}

## Files per case

- `base_config.json`: the base's `config.to_dict()` (sorted keys, indent 2): `BertModel(config,
  add_pooling_layer=False)` of `Benchmarks/golden/tiny_models.py` (hidden 16, 2 layers). No base weights: MBC reads
  only the experts.
- `experts/<name>/`: `adapter_config.json` and `adapter_model.safetensors` exactly as `PeftModel.save_pretrained`
  writes them (its model-card README deleted): `LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value"])`,
  `base_model_name_or_path` null, keys `base_model.model.<module>.lora_A.weight` [2, 16] and `.lora_B.weight`
  [16, 2] (no adapter name), LoRA parameters set to the planted values.
- `mbc.safetensors` (rows in `expert_order`):
  - `vectors` [N, D] float32: the flattened experts (step 1);
  - `sparsified` [N, D] float32: after step 2;
  - `thresholds` [N] float32 (computed in float64; the float64 values are in `cases.json`);
  - `singular_values` [c] float32, c = min(n_components, N);
  - `embeddings` [N, c] float32: the unit rows e_i (scikit-learn's signs, see 3);
  - `similarity` [N, N] float32;
  - `labels` [N] int64: scikit-learn's k-means labels.
"""


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
