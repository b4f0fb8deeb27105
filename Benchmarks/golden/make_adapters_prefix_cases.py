#!/usr/bin/env python3
"""Writes golden cases for the `adapters` library's (AdapterHub) prefix tuning (`PrefixTuningConfig`, `architecture`
"prefix_tuning"), gated and not, flat and reparametrized, and for the unions that contain it (`MAMConfig`,
`UniPELTConfig`), on the tiny BertModel and T5ForConditionalGeneration of `make_bottleneck_cases.py` (same bases and
inputs): the adapter as `save_adapter` writes it, the same adapter with one key per tensor (`written/`), every
trainable adapter parameter, eval-mode outputs, the base output, the gating scores and the gradients of sum(output^2)
with respect to every trainable adapter parameter.

    /work/venv-adapters/bin/python Benchmarks/golden/make_adapters_prefix_cases.py OUT_DIR
    # e.g. OUT_DIR = Tests/PolyPEFTTests/Resources/golden_adapters_prefix

Same venv, versions and determinism as make_bottleneck_cases.py (adapters 1.3.0, transformers 4.57.6; it re-executes
itself with PYTHONHASHSEED=0 and HF_HUB_OFFLINE=1; two runs give byte-identical folders). Checks, enforced: every
PrefixTuningLayer's returned keys / values / mask recomputed in float64 from its recorded inputs and the adapter
parameters by the formulas of OUT_DIR/README.md, and its gate likewise; the gating scores the library returns equal
those gates; T5: every attention's position bias recomputed (prefix positions, the recompute rule of the library);
the model rerun in float64 agrees; the output differs from the base and every gradient is non-zero; `adapter/` and
`written/` reload into a fresh base and reproduce the output.
"""
import os
import sys

if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("HF_HUB_OFFLINE") != "1":
    env = dict(os.environ, PYTHONHASHSEED="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import copy
import json
import platform
import shutil

import numpy as np
import torch
import torch.nn.functional as F
import adapters
import safetensors
import transformers
from adapters import AdapterConfig, MAMConfig, PrefixTuningConfig, UniPELTConfig
from adapters.methods.prefix_tuning import PrefixTuningLayer, PrefixTuningPool
from safetensors.torch import load_file, save_file
from transformers.models.t5.modeling_t5 import T5Attention

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_bottleneck_cases as bn  # noqa: E402  (bases, inputs, forward, perturbation, folder saving)

ADAPTER = bn.ADAPTER
REF_TOL, F64_TOL, RELOAD_TOL, MIN_EFFECT = bn.REF_TOL, bn.F64_TOL, bn.RELOAD_TOL, bn.MIN_EFFECT

# The defaults of MAMConfig / UniPELTConfig have prefix bottlenecks of 800 / 512. Every prefix-pool tensor is stored
# once per attention module in `adapter/` (aliases, see README), so on T5 (6 attention modules + the pool) the default
# MAM adapter alone would take ~5.5 MB. The cases below keep every default except the prefix bottleneck size; the
# defaults themselves are run on the tiny models (forward only) at every run and recorded in cases.json.
SMALL_BOTTLENECK = 12

CASES = [
    dict(name="prefix_bert", kind="bert", seed=41,
         config=lambda: PrefixTuningConfig(prefix_length=3, bottleneck_size=8),
         notes="PrefixTuningConfig(prefix_length=3, bottleneck_size=8): tanh MLP reparametrization, no gate; one "
               "self_prefix module for both layers (n_layers 2)."),
    dict(name="prefix_gated_bert", kind="bert", seed=42,
         config=lambda: PrefixTuningConfig(prefix_length=4, bottleneck_size=6, non_linearity="relu", use_gating=True,
                                           leave_out=[1]),
         notes="Gated (shared gate: Linear(16, 1), one output for keys and values), relu, prefix 4, bottleneck 6, "
               "leave_out [1]: only layer 0 has a prefix (n_layers 1) and a gate."),
    dict(name="prefix_gated_t5", kind="t5", seed=43,
         config=lambda: PrefixTuningConfig(prefix_length=3, bottleneck_size=6, use_gating=True, shared_gating=False),
         notes="Gated with shared_gating=False (Linear(16, 2): column 0 scales the keys, column 1 the values) on T5: "
               "encoder_prefix (encoder self-attention), self_prefix (decoder self-attention), cross_prefix "
               "(EncDecAttention), n_layers 2 each; gating scores [B, 2]."),
    dict(name="prefix_flat_t5", kind="t5", seed=44,
         config=lambda: PrefixTuningConfig(flat=True, prefix_length=2, cross_prefix=False, leave_out=[0]),
         notes="Flat prefix (control_trans is the [P * n_layers * 2 * heads * d] parameter), no cross prefix, "
               "leave_out [0]: encoder block 0 has no prefix, so encoder block 1's scores have P + T keys while the "
               "position bias handed on from block 0 has T; the library recomputes it, and since block 1 has no "
               "relative_attention_bias it uses ZEROS (plus the mask) instead of the relative position bias "
               "(checked; with the properly computed bias the output differs, see checks)."),
    dict(name="mam_bert", kind="bert", seed=45,
         config=lambda: MAMConfig(prefix_tuning=PrefixTuningConfig(bottleneck_size=SMALL_BOTTLENECK)),
         default=lambda: MAMConfig(),
         notes=f"MAMConfig with its defaults (prefix length 30, tanh, no gate; ParBnConfig: parallel FFN adapter, "
               f"reduction 2, scaling 4, relu) except the prefix bottleneck: {SMALL_BOTTLENECK} instead of 800 "
               f"(size: see 'MAM and UniPELT' in the README)."),
    # (seed 46 left layer 1's one-unit relu bottleneck dead on every token: zero gradients; 49 does not)
    dict(name="unipelt_bert", kind="bert", seed=49,
         config=lambda: UniPELTConfig(prefix_tuning=PrefixTuningConfig(prefix_length=10,
                                                                       bottleneck_size=SMALL_BOTTLENECK)),
         default=lambda: UniPELTConfig(),
         notes=f"UniPELTConfig with its defaults (gated prefix of length 10, gated SeqBn reduction 16 -> bottleneck 1, "
               f"gated LoRA r 8 alpha 2 on q and v) except the prefix bottleneck: {SMALL_BOTTLENECK} instead of 512 "
               f"(size: see 'MAM and UniPELT' in the README)."),
    # (seed 47 gave gate gradients with float32 cancellation: 3.6e-5 relative from the float64 rerun; 60: 4.5e-6)
    dict(name="unipelt_t5", kind="t5", seed=60,
         config=lambda: UniPELTConfig(prefix_tuning=PrefixTuningConfig(prefix_length=10,
                                                                       bottleneck_size=SMALL_BOTTLENECK)),
         default=lambda: UniPELTConfig(),
         notes=f"UniPELTConfig on T5, defaults (the SeqBn bottleneck is 16 // 16 = 1; works) except the prefix "
               f"bottleneck: {SMALL_BOTTLENECK} instead of 512 (size: see 'MAM and UniPELT' in the README). Gates: "
               f"prefix per attention, LoRA q and v of "
               f"every T5Attention (column-stacked under selfattn_lora: 2 columns in encoder blocks, 4 in decoder "
               f"blocks), SeqBn per FF layer."),
    dict(name="mam_t5", kind="t5", seed=48,
         config=lambda: MAMConfig(prefix_tuning=PrefixTuningConfig(bottleneck_size=SMALL_BOTTLENECK)),
         default=lambda: MAMConfig(),
         notes=f"MAMConfig on T5, defaults (prefix length 30 on encoder, decoder self- and cross-attention; parallel "
               f"adapter on every T5LayerFF) except the prefix bottleneck: {SMALL_BOTTLENECK} instead of 800 (size: "
               f"see 'MAM and UniPELT' in the README)."),
]


# ----------------------------------------------------------------------------------------------------------------
# Config helpers
# ----------------------------------------------------------------------------------------------------------------

def config_parts(cfg):
    return cfg["configs"] if cfg.get("architecture") == "union" else [cfg]


def prefix_part(cfg):
    return next(p for p in config_parts(cfg) if p.get("architecture") == "prefix_tuning")


def part_for_score(cfg, loc):
    """The part of a (union) config that produced the gating-score entry at location key `loc`."""
    if loc.endswith("_prefix"):
        return prefix_part(cfg)
    if loc.endswith("_lora"):
        return next(p for p in config_parts(cfg) if p.get("architecture") == "lora")
    return next(p for p in config_parts(cfg) if p.get("architecture") is None)  # bottleneck


def heads_and_dim(kind, config):
    if kind == "bert":
        return config.num_attention_heads, config.hidden_size // config.num_attention_heads
    return config.num_heads, config.d_kv


# ----------------------------------------------------------------------------------------------------------------
# Canonical keys: one per tensor (the base model's pool for prefix tensors)
# ----------------------------------------------------------------------------------------------------------------

def pool_prefix(model):
    """`<base model path>.prefix_tuning.` (the bare BertModel / T5ForConditionalGeneration: `prefix_tuning.`)."""
    base_path = next(n for n, m in model.named_modules(remove_duplicate=False) if m is model.base_model)
    pool = model.base_model.prefix_tuning
    assert isinstance(pool, PrefixTuningPool)
    return (base_path + "." if base_path else "") + "prefix_tuning."


def canonical_names(model):
    """{canonical name: parameter} for every trainable parameter, and {other name (alias): canonical name}. A tensor
    of the prefix pool is reachable as `<pool>prefix_tunings.<name>.<loc>.*` and, through every PrefixTuningLayer's
    `pool` attribute, as `<attention>.prefix_tuning.pool.prefix_tunings.<name>.<loc>.*`; the canonical name is the
    former. Everything else has one name."""
    root = pool_prefix(model) + "prefix_tunings."
    names = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        if p.requires_grad:
            names.setdefault(id(p), (p, []))[1].append(n)
    params, aliases = {}, {}
    for p, ns in names.values():
        canon = [n for n in ns if n.startswith(root)]
        if canon:
            assert len(canon) == 1, canon
            c = canon[0]
            rest = c[len(root):]
            for n in ns:
                if n != c:
                    assert n.endswith(".prefix_tuning.pool.prefix_tunings." + rest), (n, c)
                    aliases[n] = c
        else:
            assert len(ns) == 1, ns
            c = ns[0]
        params[c] = p
    return params, aliases


# ----------------------------------------------------------------------------------------------------------------
# Independent float64 re-implementation
# ----------------------------------------------------------------------------------------------------------------

def prefix_table(P, root, loc, part, heads, d):
    """[P, n_layers * 2, heads, d] float64: the prefix keys (slot 2l) and values (slot 2l + 1) of every layer of
    location `loc`."""
    a = f"{root}{ADAPTER}.{loc}."
    length = part["prefix_length"]
    if part["flat"]:
        flat = P[a + "control_trans"]
    else:
        e = P[a + "wte.weight"]  # [P, H]: the embeddings of 0 .. P-1
        h = bn.activation(part["non_linearity"], F.linear(e, P[a + "control_trans.0.weight"],
                                                         P[a + "control_trans.0.bias"]))
        flat = F.linear(h, P[a + "control_trans.2.weight"], P[a + "control_trans.2.bias"])  # [P, n_layers*2*heads*d]
    assert flat.numel() % (length * 2 * heads * d) == 0
    return flat.reshape(length, -1, heads, d)


def gate_value(P, gate_prefix, x):
    """mean over the sequence (all positions, padding included) of sigmoid(gate(x)): [B, outputs]."""
    return torch.sigmoid(F.linear(x, P[gate_prefix + "weight"], P[gate_prefix + "bias"])).mean(dim=1)


def relative_bias(attn, query_length, key_length):
    """The T5 relative position bias [1, heads, query_length, key_length] with query positions 0 .. q-1 and key
    positions 0 .. k-1 (with a prefix of length P: the prefix keys take positions 0 .. P-1 and key j of the sequence
    position P + j)."""
    rel = torch.arange(key_length)[None, :] - torch.arange(query_length)[:, None]
    bucket = T5Attention._relative_position_bucket(rel, bidirectional=not attn.is_decoder,
                                                   num_buckets=attn.relative_attention_num_buckets,
                                                   max_distance=attn.relative_attention_max_distance)
    return attn.relative_attention_bias.weight.detach()[bucket].permute(2, 0, 1).unsqueeze(0)


# ----------------------------------------------------------------------------------------------------------------
# One case
# ----------------------------------------------------------------------------------------------------------------

def prefix_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PrefixTuningLayer) and ADAPTER in m.prefixes]


def reload_into_fresh_base(kind, config, base_state, folder, seed):
    model = bn.fresh_base(kind, config, base_state)
    adapters.init(model)
    torch.manual_seed(seed)
    kwargs = {"with_head": False} if kind == "t5" else {}
    assert model.load_adapter(folder, use_safetensors=True, set_active=True, **kwargs) == ADAPTER
    return model.eval()


def run_case(case, out_root):
    name, kind = case["name"], case["kind"]
    d, config, inputs, base_state, base_output, model, _ = bn.start_case(case, out_root)
    heads, head_dim = heads_and_dim(kind, config)
    trainable, aliases = canonical_names(model)
    assert not set(trainable) & set(base_state)
    params = {n: p.detach().clone().contiguous() for n, p in trainable.items()}
    root = pool_prefix(model) + "prefix_tunings."

    # adapter/ as the library writes it (torch format converted: safetensors refuses the pool aliases)
    adapter_dir = os.path.join(d, "adapter")
    save_error = bn.save_adapter_folder(model, kind, adapter_dir)
    saved = load_file(os.path.join(adapter_dir, "adapter.safetensors"))
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)["config"]
    assert set(saved) == set(params) | set(aliases), sorted(set(saved) ^ (set(params) | set(aliases)))
    for k, v in saved.items():
        assert torch.equal(v, params[aliases.get(k, k)]), k

    # written/: one key per tensor (the canonical names), what PolyPEFT writes
    written_dir = os.path.join(d, "written")
    os.makedirs(written_dir)
    save_file(dict(sorted(params.items())), os.path.join(written_dir, "adapter.safetensors"))
    shutil.copyfile(os.path.join(adapter_dir, "adapter_config.json"), os.path.join(written_dir, "adapter_config.json"))

    # Record every PrefixTuningLayer with the adapter (inputs and returned keys / values / mask) and, on T5, every
    # T5Attention (mask, incoming and outgoing position bias).
    layers = prefix_layers(model)
    calls, attn_calls = [], []

    def hook(path):
        def f(module, args, kwargs, out):
            names = ("key_states", "value_states", "residual_input", "attention_mask")
            got = dict(zip(names, args))
            got.update({k: v for k, v in kwargs.items() if k in names})
            calls.append((path, {k: (v.detach().clone() if v is not None else None) for k, v in got.items()},
                          tuple(o.detach().clone() if o is not None else None for o in out)))
        return f

    def attn_hook(path):
        def f(module, args, kwargs, out):
            pb = kwargs.get("position_bias")
            attn_calls.append((path, module, args[0].shape[1],
                               kwargs.get("key_value_states").shape[1] if kwargs.get("key_value_states") is not None
                               else args[0].shape[1],
                               kwargs.get("mask"), pb.detach().clone() if pb is not None else None,
                               out[1].detach().clone()))
        return f

    handles = [m.register_forward_hook(hook(p), with_kwargs=True) for p, m in layers]
    attentions = [(n, m) for n, m in model.named_modules() if isinstance(m, T5Attention)]
    handles += [m.register_forward_hook(attn_hook(p), with_kwargs=True) for p, m in attentions]
    model.zero_grad()
    use_gating = any(bool(p.get("use_gating")) for p in config_parts(cfg))
    out, output = bn.forward(model, kind, inputs, **({"output_adapter_gating_scores": True} if use_gating else {}))
    for h in handles:
        h.remove()
    assert [c[0] for c in calls] == [p for p, _ in layers], [c[0] for c in calls]
    loss = (output ** 2).sum()
    loss.backward()
    effect = bn.rel_diff(output, base_output)
    assert effect > MIN_EFFECT, (name, effect)

    # Float64 reference of every prefix layer.
    part = prefix_part(cfg)
    P = {k: v.double() for k, v in params.items()}
    by_path = dict(layers)
    n_layers = {}
    for _, m in layers:
        n_layers[m.location_key] = n_layers.get(m.location_key, 0) + 1
    tables = {loc: prefix_table(P, root, loc, part, heads, head_dim) for loc in n_layers}
    for loc, t in tables.items():
        assert t.shape[1] == 2 * n_layers[loc], (loc, t.shape, n_layers[loc])
    length = part["prefix_length"]
    worst = gate_worst = 0.0
    expected_gates, layer_info = {}, []
    for path, got, (k_out, v_out, mask_out) in calls:
        m = by_path[path]
        pid = m.prefixes[ADAPTER]
        B = got["key_states"].shape[0]
        keys = tables[m.location_key][:, 2 * pid].permute(1, 0, 2).unsqueeze(0).expand(B, -1, -1, -1)
        values = tables[m.location_key][:, 2 * pid + 1].permute(1, 0, 2).unsqueeze(0).expand(B, -1, -1, -1)
        if part["use_gating"]:
            g = gate_value(P, f"{path}.prefix_gates.{ADAPTER}.", got["residual_input"].double())  # [B, 1 or 2]
            assert g.shape[1] == (1 if part["shared_gating"] else 2)
            keys = keys * g[:, 0].view(-1, 1, 1, 1)
            values = values * g[:, -1].view(-1, 1, 1, 1)
            expected_gates[f"gate.{m.layer_idx}.{m.location_key}"] = g.squeeze()
        else:
            assert len(m.prefix_gates) == 0
        assert k_out.shape[2] == length + got["key_states"].shape[2]
        worst = max(worst, bn.rel_diff(k_out[:, :, :length], keys), bn.rel_diff(v_out[:, :, :length], values))
        assert torch.equal(k_out[:, :, length:], got["key_states"]) and torch.equal(v_out[:, :, length:],
                                                                                      got["value_states"]), path
        mask_in = got["attention_mask"]
        assert mask_in is not None and mask_in.dim() == 4, path
        expected_mask = torch.cat([torch.zeros(*mask_in.shape[:3], length, dtype=mask_in.dtype), mask_in], dim=-1)
        assert torch.equal(mask_out, expected_mask), path
        layer_info.append({"path": path, "layer_idx": m.layer_idx, "location_key": m.location_key, "prefix_id": pid,
                           "gate_outputs": (1 if part["shared_gating"] else 2) if part["use_gating"] else None})
    assert worst < REF_TOL, (name, "prefix reference", worst)

    # Gating scores: every entry as the library returns it (prefix ones checked against the reference above).
    gates = {}
    if use_gating:
        scores = out["adapter_gating_scores"]
        assert set(scores) == {ADAPTER}
        for layer in sorted(scores[ADAPTER]):
            for loc in sorted(scores[ADAPTER][layer]):
                if not part_for_score(cfg, loc)["use_gating"]:
                    continue  # not a gate (see make_bottleneck_cases.py README); none in these cases
                gates[f"gate.{layer}.{loc}"] = torch.from_numpy(np.ascontiguousarray(scores[ADAPTER][layer][loc]))
        for key, g in expected_gates.items():
            assert gates[key].shape == g.shape, (key, gates[key].shape, g.shape)
            gate_worst = max(gate_worst, bn.rel_diff(gates[key], g))
        assert set(k for k in gates if k.endswith("_prefix")) == set(expected_gates), (sorted(gates),
                                                                                     sorted(expected_gates))
        assert gate_worst < REF_TOL, (name, "gate reference", gate_worst)

    # T5: the position bias of every attention (the library's rule, with the prefix keys in front).
    t5_checks, recomputed_info = {}, []
    if kind == "t5":
        prefixed = {p[: -len(".prefix_tuning")] for p, _ in layers}
        bias_worst = 0.0
        for path, attn, q_len, kv_len, mask, pb_in, pb_out in attn_calls:
            key_len = kv_len + (length if path in prefixed else 0)
            if pb_in is None or pb_in.shape[3] != key_len:
                base = (relative_bias(attn, q_len, key_len) if attn.has_relative_attention_bias
                        else torch.zeros(1, attn.n_heads, q_len, key_len))
                pmask = mask if path not in prefixed else torch.cat(
                    [torch.zeros(*mask.shape[:3], length, dtype=mask.dtype), mask], dim=-1)
                expected = base + pmask[:, :, :, :key_len]
                recomputed_info.append({"path": path, "key_length": key_len, "prefix": path in prefixed,
                                        "relative_attention_bias": attn.has_relative_attention_bias,
                                        "incoming_bias_key_length": None if pb_in is None else pb_in.shape[3]})
            else:
                expected = pb_in
            assert pb_out.shape == expected.shape, (path, pb_out.shape, expected.shape)
            bias_worst = max(bias_worst, bn.rel_diff(pb_out, expected))
        assert bias_worst < REF_TOL, (name, "position bias", bias_worst)
        t5_checks["t5_position_bias_rel_diff_max"] = bias_worst

    if case["name"] == "prefix_flat_t5":
        # The quirk: encoder block 1 recomputes its bias as zeros + mask (it has no relative_attention_bias).
        quirk = next(r for r in recomputed_info if r["path"] == "encoder.block.1.layer.0.SelfAttention")
        assert quirk["prefix"] and not quirk["relative_attention_bias"] and quirk["incoming_bias_key_length"] == 5
        # Hand that layer the bias a prefix-aware model would compute (block 0's relative bias over P + T keys):
        # the output differs. Handing it zeros + mask through the same hook reproduces the output (hook sanity).
        a0 = model.encoder.block[0].layer[0].SelfAttention
        a1 = model.encoder.block[1].layer[0].SelfAttention
        T = inputs["input_ids"].shape[1]

        def with_bias(proper):
            def pre(module, args, kwargs):
                mask = kwargs["mask"]
                pmask = torch.cat([torch.zeros(*mask.shape[:3], length, dtype=mask.dtype), mask], dim=-1)
                base = relative_bias(a0, T, length + T) if proper else torch.zeros(1, a1.n_heads, T, length + T)
                kwargs["position_bias"] = base + pmask
                return args, kwargs
            h = a1.register_forward_pre_hook(pre, with_kwargs=True)
            with torch.no_grad():
                _, o = bn.forward(model, kind, inputs)
            h.remove()
            return o
        t5_checks["t5_quirk_zero_bias_via_hook_rel_diff"] = bn.rel_diff(with_bias(False), output)
        t5_checks["t5_quirk_output_with_proper_bias_rel_diff"] = bn.rel_diff(with_bias(True), output)
        assert t5_checks["t5_quirk_zero_bias_via_hook_rel_diff"] < RELOAD_TOL, t5_checks
        assert t5_checks["t5_quirk_output_with_proper_bias_rel_diff"] > MIN_EFFECT, t5_checks

    grads = {"loss": loss.detach().reshape(1)}
    for n, p in trainable.items():
        assert p.grad is not None and float(p.grad.abs().max()) > 0, (name, "zero gradient", n)
        grads["grad." + n] = p.grad.detach().clone()

    m64 = copy.deepcopy(model).double()
    m64.zero_grad()
    _, out64 = bn.forward(m64, kind, inputs)
    (out64 ** 2).sum().backward()
    p64 = dict(m64.named_parameters(remove_duplicate=False))
    f64_out = bn.rel_diff(output, out64)
    f64_grad = max(bn.rel_diff(grads["grad." + n], p64[n].grad) for n in trainable)
    assert f64_out < F64_TOL and f64_grad < F64_TOL, (name, f64_out, f64_grad)
    del m64

    reload = {}
    for folder, seed in ((adapter_dir, case["seed"] + 2000), (written_dir, case["seed"] + 3000)):
        reloaded = reload_into_fresh_base(kind, config, base_state, folder, seed)
        rp = dict(reloaded.named_parameters(remove_duplicate=False))
        for n, v in params.items():
            assert torch.equal(rp[n].detach(), v), (folder, n)
        for a, n in aliases.items():
            assert rp[a] is rp[n], (folder, a)
        with torch.no_grad():
            _, out_r = bn.forward(reloaded, kind, inputs)
        reload[os.path.basename(folder)] = bn.rel_diff(out_r, output)
        assert reload[os.path.basename(folder)] < RELOAD_TOL, (name, folder, reload)

    default_info = None
    if "default" in case:
        # The library's default config: its saved form, and that it runs on the tiny model (forward only).
        dm = bn.fresh_base(kind, config, base_state)
        adapters.init(dm)
        torch.manual_seed(case["seed"] + 4000)
        dm.add_adapter(ADAPTER, config=case["default"]())
        dm.set_active_adapters(ADAPTER)
        with torch.no_grad():
            _, out_d = bn.forward(dm, kind, inputs)
        assert torch.isfinite(out_d).all()
        default_cfg = AdapterConfig.load(case["default"]()).to_dict()
        diff = {}
        for i, (pd, pc) in enumerate(zip(config_parts(default_cfg), config_parts(cfg))):
            for k in sorted(set(pd) | set(pc)):
                if pd.get(k) != pc.get(k):
                    diff[f"configs[{i}].{k}"] = {"default": pd.get(k), "here": pc.get(k)}
        assert list(diff) == ["configs[0].bottleneck_size"], diff
        default_info = {"config": default_cfg, "runs_on_tiny_model": True, "differences": diff,
                        "adapter_parameter_count": sum(p.numel() for n, p in dm.named_parameters() if ADAPTER in n)}

    outputs = {"base_output": base_output, "output": output.detach().clone()}
    outputs.update(gates)
    save_file(params, os.path.join(d, "adapter_parameters.safetensors"))
    save_file(outputs, os.path.join(d, "outputs.safetensors"))
    save_file(grads, os.path.join(d, "grads.safetensors"))
    checks = {"output_vs_base_rel_diff": effect, "prefix_reference_rel_diff_max": worst,
              "float64_library_output_rel_diff": f64_out, "float64_library_grad_rel_diff_max": f64_grad,
              "reload_adapter_rel_diff": reload["adapter"], "reload_written_rel_diff": reload["written"]}
    if expected_gates:
        checks["prefix_gate_reference_rel_diff_max"] = gate_worst
    checks.update(t5_checks)
    shapes = lambda t: {k: list(v.shape) for k, v in sorted(t.items())}
    entry = {
        "name": name, "model_kind": kind, "notes": case["notes"], "config": cfg,
        "prefix_layers": layer_info,
        "prefix_locations": {loc: {"n_layers": n_layers[loc], "heads": heads, "head_dim": head_dim,
                                   "prefix_length": length, "flat": part["flat"]} for loc in sorted(n_layers)},
        "parameter_keys": shapes(params),
        "adapter_file_aliases": {k: aliases[k] for k in sorted(aliases)},
        "save_adapter_safetensors_error": save_error,
        "gate_keys": shapes(gates),
        "output_shape": list(output.shape),
        "checks": checks,
    }
    if kind == "t5":
        entry["t5_position_bias_recomputed"] = recomputed_info
    if default_info is not None:
        entry["library_default"] = default_info
    size = sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(d) for fn in fs)
    entry_size = size
    print(f"{name}: {size / 1024:.1f} KB, {len(layers)} prefix layers, checks {json.dumps(checks)}")
    return entry, entry_size


README = """# Golden vectors for the adapters library's prefix tuning (AdapterHub `adapters`)

Reference results of the `adapters` library for its `PrefixTuningConfig` (`architecture` "prefix_tuning"), gated
and not, flat and reparametrized, and for the unions `MAMConfig` and `UniPELTConfig`, on the tiny models of
`golden_bottleneck/` (the same base weights and inputs). One sub-folder per case, in the format of
`golden_adapters_lora/`:

- `adapter/`: `adapter_config.json` and `adapter.safetensors` as the library writes them. `save_adapter(...,
  use_safetensors=True)` fails for every prefix adapter (`RuntimeError: Some tensors share memory ...`, see
  "Keys"), so the folder is saved in the library's default torch format and the file converted (same keys, every
  alias as a separate copy of the tensor); `load_adapter(dir, use_safetensors=True)` reads it back (checked).
- `written/`: the same adapter with one key per tensor (the canonical keys below, no aliases), `adapter_config.json`
  copied: what PolyPEFT writes. `load_adapter` reads it into a fresh base and reproduces `output` (checked).
- `adapter_parameters.safetensors`: every trainable parameter under its canonical key.
- `base_config.json`, `base_model.safetensors`, `inputs.safetensors`: the base (as in `golden_bottleneck/`).
- `outputs.safetensors`: `output`, `base_output`, and with gating the scores `gate.<layer>.<location key>` exactly
  as `forward(..., output_adapter_gating_scores=True)` returns them (all of them, also the LoRA `selfattn_lora` and
  bottleneck `output_adapter` gates of UniPELT).
- `grads.safetensors`: `loss` = sum(output^2) and `grad.<canonical key>`.

`cases.json` is the index (config, prefix layers, keys and shapes, aliases, checks).

## Provenance

- {{VERSIONS}}; CPU, one thread, `torch.use_deterministic_algorithms(True)`.
- Written by `Benchmarks/golden/make_adapters_prefix_cases.py` in the `adapters` venv (see `Benchmarks/golden/README.md`):

      /work/venv-adapters/bin/python Benchmarks/golden/make_adapters_prefix_cases.py Tests/PolyPEFTTests/Resources/golden_adapters_prefix

  Rerunning gives byte-identical folders.
- Checks, enforced by the script (numbers in `cases.json`): every `PrefixTuningLayer`'s returned keys and values
  recomputed in float64 from the parameters and the recorded layer input by the formulas below (< 2e-5 of the
  largest magnitude; the positions after the prefix equal the layer's own keys / values exactly, and the returned
  mask is the input mask with P zeros in front); the returned prefix gating scores equal the recomputed gates; T5:
  every attention's position bias recomputed by the rule below; the model in float64 agrees (< 2e-5); the output
  differs from the base and every gradient is non-zero; `adapter/` and `written/` each reload into a fresh base,
  every parameter (and alias) equal, and reproduce `output` (< 1e-6); for the MAM / UniPELT cases the library's
  default config also runs on the tiny model.

## The maths (adapters 1.3.0, `methods/prefix_tuning.py`)

Locations: BERT `self_prefix` (every `attention.self`); T5 `encoder_prefix` (encoder `SelfAttention`, with
`encoder_prefix`), `self_prefix` (decoder `SelfAttention`, always), `cross_prefix` (decoder `EncDecAttention`, with
`cross_prefix`). Per location there is ONE module in the model's pool with n_layers = the number of attention modules
at that location not left out (`leave_out` uses the library's layer numbers: T5 encoder blocks 0 .. L-1, decoder
block i is L + i); the attention modules of a location get prefix_id 0, 1, ... in module order. H = hidden size,
heads = attention heads, d = head dim (BERT H / heads, T5 d_kv), P = prefix_length.

    non-flat: wte [P, H], control_trans = Linear(H, bottleneck) (.0), activation, Linear(bottleneck, n_layers*2*heads*d) (.2)
              table = control_trans(wte(0 .. P-1))           [P, n_layers*2*heads*d]
    flat:     table = control_trans                          [P*n_layers*2*heads*d]  (a parameter)
    table viewed [P, n_layers*2, heads, d]; layer with prefix_id l: keys = table[:, 2l], values = table[:, 2l+1],
    each permuted to [heads, P, d] and broadcast to [B, heads, P, d].

Gate (`use_gating`): `prefix_gates.<name>` = Linear(H, 1 if shared_gating else 2) on the attention's input x (BERT:
the layer input; T5: the layer-normed hidden states, for cross-attention the decoder (query) side):

    g = mean over the sequence (all positions, padding included) of sigmoid(x W^T + b)     [B, 1 or 2]
    keys *= g[:, 0],  values *= g[:, -1]                     (shared: the same g for both)

The gating score is `g.squeeze()` as numpy: [B] (shared) or [B, 2], under `adapter_gating_scores[name][layer_idx]
[location key]` (one entry per attention module: T5 decoder blocks have `self_prefix` and `cross_prefix`).

Attention: the prefix keys / values are concatenated BEFORE the module's own along the sequence (K = P + S keys);
the additive mask gets P zeros (visible) in front: `[B, 1, 1 or Tq, P + S]`. Dropout (`dropout`, default 0) acts on
the table and is off in eval mode.

T5 position bias (`T5AttentionWithAdapters`): the bias is computed by the first attention of a stack and handed on;
it is recomputed when none is handed in or its key length differs from P + S:

    bias = relative bias with query positions 0 .. Tq-1 and key positions 0 .. P+S-1
           (`compute_bias(Tq, P + S)`: the prefix keys take positions 0 .. P-1, the module's own key j position P + j,
           i.e. relative position P + j - i between query i and key j)    if the module has relative_attention_bias
         = zeros [1, heads, Tq, P + S]                                     otherwise (blocks >= 1, cross-attention)
    bias += the prefixed mask

So with prefixes in every block the relative position of the sequence keys is shifted by P. With a prefix missing
in block 0 (`leave_out` [0], `prefix_flat_t5`) block 0 hands on a bias over S keys, block 1 (with a prefix, P + S
keys) recomputes it and, having no relative_attention_bias, uses zeros: the encoder blocks >= 1 then run WITHOUT
relative position information (checked; the output with block 0's relative bias over P + S keys instead differs,
`t5_quirk_output_with_proper_bias_rel_diff`).

## Keys

The pool is a module of the base model (`prefix_tuning`); every `PrefixTuningLayer` holds a reference to it
(`pool`), so `state_dict()` and `save_adapter` list each pool tensor once under the base model and once under every
attention module's `prefix_tuning.pool` (all 3 locations under each, also under attention modules without a prefix
of this adapter), and `named_parameters()` names it by its first alias (under the first attention module).

- canonical (here: `adapter_parameters.safetensors`, `grad.*`, `written/`):
  `prefix_tuning.prefix_tunings.<name>.<location>.{wte.weight, control_trans.0.weight, control_trans.0.bias,
  control_trans.2.weight, control_trans.2.bias}` or
  `prefix_tuning.prefix_tunings.<name>.<location>.control_trans` (flat). (Bare `BertModel` and
  `T5ForConditionalGeneration`: the model is its own base model, so the key has no base-model prefix.)
- aliases (also in `adapter/`): `<attention>.prefix_tuning.pool.prefix_tunings.<name>.<location>.*` for every
  attention module (BERT `encoder.layer.N.attention.self`, T5 `encoder.block.N.layer.0.SelfAttention`,
  `decoder.block.N.layer.0.SelfAttention`, `decoder.block.N.layer.1.EncDecAttention`); listed in `cases.json` under
  `adapter_file_aliases`.
- gates: `<attention>.prefix_tuning.prefix_gates.<name>.{weight [1 or 2, H], bias [1 or 2]}` (one name).
- union parts: LoRA `<module>.loras.<name>.*`, bottleneck `<slot>.adapters.<name>.*` (see `golden_adapters_lora/`,
  `golden_bottleneck/`).

## MAM and UniPELT

`MAMConfig()` = union(PrefixTuningConfig(bottleneck_size=800), ParBnConfig()); `UniPELTConfig()` =
union(PrefixTuningConfig(prefix_length=10), SeqBnConfig(reduction_factor=16), LoRAConfig(r=8, alpha=2)), every part
with `use_gating=True`. Both defaults work on the tiny models (checked each run; UniPELT's SeqBn bottleneck is
16 // 16 = 1). The cases use them with ONE change, the prefix `bottleneck_size` {{SMALL}} instead of 800 / 512: the
default tables alone are 65k (MAM) / 42k (UniPELT) floats per location, and `adapter/` holds every pool tensor once
per attention module plus once for the pool (BERT 3 copies, T5 7), which would make `mam_t5` alone ~5.5 MB. The
library's default config (saved form) is in `cases.json` under `library_default`.

## Cases

| case | model | prefix layers | size | what |
| --- | --- | --- | --- | --- |
{{ROWS}}
"""


def main(out_root):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out_root, exist_ok=True)
    results = [run_case(c, out_root) for c in CASES]
    entries = [e for e, _ in results]
    versions = {"adapters": adapters.__version__, "transformers": transformers.__version__,
                "torch": torch.__version__, "safetensors": safetensors.__version__,
                "python": platform.python_version()}
    with open(os.path.join(out_root, "cases.json"), "w") as f:
        f.write(bn.compact_json({"versions": versions, "adapter_name": ADAPTER, "cases": entries}) + "\n")
    rows = "\n".join(f"| `{e['name']}` | {e['model_kind']} | {len(e['prefix_layers'])} | {s // 1024} KB | "
                     f"{e['notes']} |" for e, s in results)
    text = (README.replace("{{VERSIONS}}", ", ".join(f"{k} {v}" for k, v in versions.items()))
            .replace("{{ROWS}}", rows).replace("{{SMALL}}", str(SMALL_BOTTLENECK)))
    with open(os.path.join(out_root, "README.md"), "w") as f:
        f.write(text)
    total = sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(out_root) for fn in fs)
    print(f"wrote {out_root} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
