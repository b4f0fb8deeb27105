#!/usr/bin/env python3
"""Writes golden cases for bottleneck adapters (sequential, double/Houlsby, parallel, the generic BnConfig options and
the Compacter / Compacter++ PHM layers) from the `adapters` library (AdapterHub) on tiny models built from code (a
BertModel and a T5ForConditionalGeneration; random weights, no downloads): the adapter exactly as `save_adapter`
writes it, every trainable adapter parameter, inputs, eval-mode outputs with the input and output of every bottleneck
slot, the gating scores, and the gradients of sum(output^2) with respect to every trainable adapter parameter.

    /work/venv-adapters/bin/python Benchmarks/golden/make_bottleneck_cases.py OUT_DIR
    # e.g. OUT_DIR = Tests/PolyPEFTTests/Resources/golden_bottleneck

Writes OUT_DIR/<case>/..., OUT_DIR/cases.json and OUT_DIR/README.md. Needs adapters 1.3.0, transformers 4.57.6
(adapters pins transformers ~=4.57.6, so this runs in its own venv; see Benchmarks/golden/README.md), torch and
safetensors. It does not import PEFT. Deterministic: fixed seeds, one thread, deterministic algorithms, and the script
re-executes itself with PYTHONHASHSEED=0 and HF_HUB_OFFLINE=1; two runs give byte-identical folders.

Besides writing, the script checks every case (and fails otherwise): the output of every bottleneck slot is
recomputed in float64 plain torch from the slot's recorded inputs, the host's LayerNorm and the adapter parameters,
following the formulas of OUT_DIR/README.md; the gating scores are recomputed likewise; the whole adapted model is
rerun in float64 (outputs and gradients must agree with the float32 ones); and the written adapter folder is reloaded
with `load_adapter` into a fresh base.
"""
import os
import sys

if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("HF_HUB_OFFLINE") != "1":
    env = dict(os.environ, PYTHONHASHSEED="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import copy
import json
import logging
import platform
import re
import shutil
import tempfile
import warnings

import torch
import torch.nn.functional as F
import adapters
import safetensors
import transformers
from adapters import (BnConfig, CompacterConfig, CompacterPlusPlusConfig, ConfigUnion, DoubleSeqBnConfig, ParBnConfig,
                      SeqBnConfig)
from adapters.methods.bottleneck import BottleneckLayer
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_models import (BASE_SEED, bert_config, build_base, compact_json, fresh_base, new_model,  # noqa: E402,F401
                         t5_config, transformer_inputs)

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
logging.getLogger("adapters").setLevel(logging.ERROR)

ADAPTER = "golden"
# float32 library result vs the float64 re-implementation, relative to the largest magnitude of the compared tensor
REF_TOL = 2e-5
# float32 library forward/backward vs the same library model converted to float64
F64_TOL = 2e-5
# outputs of the adapter reloaded from the written folder vs the original (same float32 computation)
RELOAD_TOL = 1e-6
# the adapter must change the output at least this much (relative to the largest magnitude of base_output)
MIN_EFFECT = 1e-3


# ----------------------------------------------------------------------------------------------------------------
# Base models (tiny_models.py, shared with make_method_cases.py)
# ----------------------------------------------------------------------------------------------------------------







def forward(model, kind, inputs, **kwargs):
    out = model(**inputs, **kwargs)
    return out, (out.last_hidden_state if kind == "bert" else out.logits)


def untied_state(state):
    """The state dict with tied parameters written once (T5: `shared.weight`; `encoder.embed_tokens.weight`,
    `decoder.embed_tokens.weight` and `lm_head.weight` are the same tensor and are left out, as `save_pretrained`
    does). Returns (tensors to write, {left-out key: written key})."""
    first, tied, out = {}, {}, {}
    for k, v in state.items():
        ptr = (v.data_ptr(), tuple(v.shape))
        if ptr in first:
            tied[k] = first[ptr]
        else:
            first[ptr] = k
            out[k] = v.detach().clone().contiguous()
    return out, tied


# ----------------------------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------------------------

CASES = [
    dict(name="seqbn_bert", kind="bert", seed=11,
         config=lambda: SeqBnConfig(reduction_factor=4),
         notes="SeqBnConfig (Pfeiffer): output adapter only, original_ln_before, residual_before_ln, relu, "
               "bottleneck 4."),
    dict(name="seqbn_t5", kind="t5", seed=12,
         config=lambda: SeqBnConfig(reduction_factor=4),
         notes="SeqBnConfig (Pfeiffer) on T5: every T5LayerFF (encoder layer.1, decoder layer.2); T5 passes no "
               "LayerNorm, so original_ln_before is a plain y + h and original_ln_after a plain + h."),
    dict(name="doubleseqbn_bert", kind="bert", seed=13,
         config=lambda: DoubleSeqBnConfig(reduction_factor=4),
         notes="DoubleSeqBnConfig (Houlsby): attention-output and FFN-output adapters, swish (SiLU), bottleneck 4."),
    dict(name="doubleseqbn_t5", kind="t5", seed=14,
         config=lambda: DoubleSeqBnConfig(reduction_factor=4, cross_adapter=True, leave_out=[1]),
         notes="DoubleSeqBnConfig with cross_adapter and leave_out [1]: the library numbers T5 layers encoder first, "
               "then decoder (decoder block i is layer 2 + i), so only encoder block 1 is left out; decoder blocks 0 "
               "and 1 get self-attention, cross-attention and FFN adapters."),
    dict(name="parbn_bert", kind="bert", seed=15,
         config=lambda: ParBnConfig(reduction_factor=4),
         notes="ParBnConfig (He et al.): parallel FFN adapter fed with the sublayer input h, scaling 4.0, relu, "
               "mam_adapter init (up-projection zero before the perturbation)."),
    dict(name="parbn_t5", kind="t5", seed=16,
         config=lambda: ParBnConfig(reduction_factor=4),
         notes="ParBnConfig on T5: parallel adapter on every T5LayerFF, fed with the residual stream h (before the "
               "FF layer norm)."),
    dict(name="bn_options_bert", kind="bert", seed=17,
         config=lambda: BnConfig(mh_adapter=True, output_adapter=True, reduction_factor={"0": 2, "default": 8},
                                 non_linearity="tanh", original_ln_before=True, original_ln_after=True,
                                 ln_before=True, ln_after=True, adapter_residual_before_ln=True,
                                 residual_before_ln=False, scaling="channel", use_gating=True, dropout=0.1),
         notes="BnConfig with per-layer reduction factors (layer 0: 16/2 = 8, layer 1: default 8 -> 2), tanh, "
               "original LN before and after, adapter LayerNorms before and after, adapter residual before the "
               "after-LN, residual taken after the original LN, per-channel scaling, gating, dropout 0.1 (off in "
               "eval). save_adapter(use_safetensors=True) fails here (ln_before aliases): see README."),
    dict(name="bn_post_add_bert", kind="bert", seed=18,
         config=lambda: BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=4, non_linearity="gelu",
                                 original_ln_before=True, residual_before_ln="post_add", scaling="learned",
                                 init_weights="houlsby", leave_out=[0]),
         notes="BnConfig with residual_before_ln='post_add' (residual = y + h before the original LN), gelu (erf), "
               "learned scalar scaling, houlsby init, leave_out [0]: only encoder.layer.1.output has an adapter."),
    dict(name="bn_parallel_options_t5", kind="t5", seed=19,
         config=lambda: BnConfig(is_parallel=True, mh_adapter=True, output_adapter=True, reduction_factor=2,
                                 non_linearity="relu", ln_before=True, ln_after=False, scaling=0.5, use_gating=True,
                                 init_weights="mam_adapter", original_ln_after=True),
         notes="Parallel BnConfig on T5 self-attention and FFN slots (no cross_adapter), adapter LayerNorm before, "
               "scaling 0.5, gating on h, bottleneck 8. Adjusted: ln_after=False (with ln_after=True the gate "
               "only acts through the LayerNorm eps and its gradient is float32 noise, see README; parallel "
               "ln_after is in bn_parallel_ln_after_bert). save_adapter(use_safetensors=True) fails here "
               "(ln_before aliases): see README."),
    dict(name="bn_parallel_ln_after_bert", kind="bert", seed=24,
         config=lambda: BnConfig(is_parallel=True, mh_adapter=True, output_adapter=True, reduction_factor=4,
                                 non_linearity="relu", ln_after=True, scaling=2.0, original_ln_after=True),
         notes="Parallel BnConfig on both BERT slots with the adapter LayerNorm after the bottleneck (no gating; a "
               "constant scaling, which LN_after cancels up to eps), bottleneck 4, bert init. Added to cover the "
               "parallel ln_after path taken out of bn_parallel_options_t5."),
    dict(name="compacter_bert", kind="bert", seed=20,
         config=lambda: CompacterConfig(reduction_factor=2, phm_dim=4),
         notes="CompacterConfig (Houlsby placement, gelu) with PHM down/up projections: phm_dim 4, shared "
               "(unfactorized) phm_rule [4, 4, 4], factorized W of rank 1, bias; bottleneck 8. The shared phm_rule "
               "is NOT in adapter/ (see README)."),
    dict(name="compacter_pp_t5", kind="t5", seed=21,
         config=lambda: CompacterPlusPlusConfig(reduction_factor=2, phm_dim=4),
         notes="CompacterPlusPlusConfig (Pfeiffer placement, gelu) on T5: PHM phm_dim 4, shared phm_rule, factorized "
               "W rank 1; bottleneck 8. The shared phm_rule is NOT in adapter/ (see README)."),
    dict(name="compacter_options_bert", kind="bert", seed=22,
         config=lambda: CompacterConfig(reduction_factor=2, phm_dim=2, shared_phm_rule=False,
                                        factorized_phm_rule=True, factorized_phm_W=False, phm_bias=False,
                                        phm_c_init="uniform"),
         notes="CompacterConfig with phm_dim 2, a per-layer factorized phm rule (phm_rule_left [2, 2, 1], "
               "phm_rule_right [2, 1, 2] in every PHM layer), unfactorized W, no bias; everything is saved."),
    dict(name="compacter_rank_bert", kind="bert", seed=23,
         config=lambda: CompacterPlusPlusConfig(reduction_factor=2, phm_dim=4, phm_rank=2, shared_phm_rule=True,
                                                factorized_phm_rule=True, phm_c_init="uniform"),
         notes="CompacterPlusPlusConfig with phm_rank 2 and a shared factorized phm rule (shared_parameters: "
               "phm_rule_left [4, 4, 1], phm_rule_right [4, 1, 4], uniform(-1, 1) init); the shared rule is NOT in "
               "adapter/ (see README)."),
    dict(name="compacter_shared_w_bert", kind="bert", seed=27,
         config=lambda: CompacterConfig(reduction_factor=2, phm_dim=4, shared_W_phm=True),
         notes="CompacterConfig with shared_W_phm: every PHM layer's W is the model's (shared_parameters: W_down_left "
               "[4, 4, 1], W_down_right [4, 1, 2], W_up_left [4, 2, 1], W_up_right [4, 1, 4], factorized as the library "
               "requires) besides the shared phm_rule; the layers keep their own b. The shared parameters are NOT in "
               "adapter/ (see README)."),
    # ConfigUnion of bottleneck parts: one adapter name, each slot filled by the part whose location it is.
    dict(name="union_bert", kind="bert", seed=24,
         config=lambda: ConfigUnion(
             BnConfig(mh_adapter=True, output_adapter=False, reduction_factor=2, non_linearity="relu", use_gating=True),
             BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=8, non_linearity="tanh", is_parallel=True,
                      scaling=2.0, use_gating=True)),
         notes="ConfigUnion of two bottleneck adapters: a sequential one after attention (bottleneck 8, relu) and a "
               "parallel one beside the FFN (bottleneck 2, tanh, scaling 2), both gated: the gating scores of both "
               "locations per layer."),
    dict(name="union_t5", kind="t5", seed=25,
         config=lambda: ConfigUnion(
             BnConfig(mh_adapter=True, output_adapter=False, cross_adapter=True, reduction_factor=4,
                      non_linearity="swish", original_ln_before=True, use_gating=True),
             SeqBnConfig(reduction_factor=2, leave_out=[0])),
         notes="ConfigUnion on T5: a gated sequential adapter after self- and cross-attention (bottleneck 4, swish) "
               "and a Pfeiffer adapter after every FF layer but layer 0's (bottleneck 8; leave_out [0] in that part "
               "only)."),
    dict(name="union_compacter_bert", kind="bert", seed=26,
         config=lambda: ConfigUnion(
             CompacterPlusPlusConfig(reduction_factor=2, phm_dim=4, mh_adapter=True, output_adapter=False),
             BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=4, non_linearity="relu", ln_after=True)),
         notes="ConfigUnion of a Compacter++ part moved after attention (PHM, shared phm_rule, bottleneck 8) and a "
               "plain bottleneck after the FFN with its LayerNorm after (bottleneck 4); the shared rule is NOT in "
               "adapter/ (see README)."),
]

# Option combinations that fail inside the library (probed at every run; the messages go to cases.json / README).
BROKEN = [
    dict(name="compacter_shared_W_unfactorized", kind="bert", stage="add_adapter",
         call="CompacterConfig(reduction_factor=2, shared_W_phm=True, factorized_phm_W=False)",
         why="`init_shared_parameters` (methods/modeling.py) reads `_in_feats_per_axis` in the unfactorized "
             "shared-W branch without defining it."),
    dict(name="compacter_shared_W_reduction_mapping", kind="bert", stage="add_adapter",
         call='CompacterConfig(reduction_factor={"default": 2}, shared_W_phm=True)',
         why="`init_shared_parameters` computes `in_features // config['reduction_factor']`, which fails for a "
             "per-layer mapping."),
    dict(name="compacter_mam_adapter_init", kind="bert", stage="add_adapter",
         call='CompacterConfig(reduction_factor=2, init_weights="mam_adapter")',
         why="the mam_adapter init of `Adapter.__init__` calls `kaiming_uniform_(layer.weight)` on the PHMLayer, "
             "which has no `weight`."),
    dict(name="compacter_houlsby_init", kind="bert", stage="add_adapter",
         call='CompacterConfig(reduction_factor=2, init_weights="houlsby")',
         why="the houlsby init of `Adapter.__init__` calls `trunc_normal_(layer.weight)` on the PHMLayer, which has "
             "no `weight`."),
    dict(name="post_add_without_original_ln_before", kind="bert", stage="forward",
         call='BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=4, non_linearity="relu", '
              'residual_before_ln="post_add")',
         why="`Adapter.pre_forward` assigns the residual for 'post_add' only inside `if original_ln_before: if "
             "layer_norm:`; otherwise `residual` is never assigned."),
    dict(name="post_add_t5", kind="t5", stage="forward",
         call='BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=4, non_linearity="relu", '
              'original_ln_before=True, residual_before_ln="post_add")',
         why="T5 passes layer_norm=None, so the 'post_add' branch (inside `if layer_norm:`) never assigns "
             "`residual`."),
    dict(name="ln_before_save_safetensors", kind="bert", stage="save_adapter",
         call='BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=4, non_linearity="relu", '
              'ln_before=True)',
         why="with ln_before the adapter's LayerNorm is registered twice (`adapter_norm_before` and "
             "`adapter_down.0`); `save_adapter(..., use_safetensors=True)` hands both names of the same tensor to "
             "safetensors, which refuses shared tensors. (The default torch format works; the cases with ln_before "
             "convert that file, see above.)"),
]


# ----------------------------------------------------------------------------------------------------------------
# Making adapters non-trivial
# ----------------------------------------------------------------------------------------------------------------

PHM_RULE_SUFFIXES = ("phm_rule", "phm_rule_left", "phm_rule_right")


def perturb(model, seed):
    """Every trainable adapter parameter p += s * N(0,1) (seeded, parameter order): s = 0.5 for PHM rules (their
    init is ~1e-4 or 1e-2, which would make the PHM layers nearly zero), 0.3 otherwise."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            scale = 0.5 if name.split(".")[-1] in PHM_RULE_SUFFIXES else 0.3
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


# ----------------------------------------------------------------------------------------------------------------
# Independent float64 re-implementation of one bottleneck slot
# ----------------------------------------------------------------------------------------------------------------

def activation(name, x):
    name = name.lower()
    if name == "relu":
        return torch.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / 2.0 ** 0.5))  # exact (erf) GELU
    if name in ("swish", "silu"):
        return x * torch.sigmoid(x)
    raise ValueError(name)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def phm_linear(P, prefix, cfg, x):
    """PHM layer `prefix` (e.g. `...adapters.golden.adapter_down.0.`): H [in, out] = sum_i kron(rule_i, W_i),
    y = x H + b."""
    if cfg["shared_W_phm"]:
        # the model's W for this position (down or up), shared by every layer; the library runs the factorized form only
        assert cfg["factorized_phm_W"]
        pos = "down" if ".adapter_down." in prefix else "up"
        shared = f"shared_parameters.{ADAPTER}.W_{pos}_"
        W = P[shared + "left"] @ P[shared + "right"]
    elif cfg["factorized_phm_W"]:
        W = P[prefix + "W_left"] @ P[prefix + "W_right"]  # [n, in/n, rank] @ [n, rank, out/n]
    else:
        W = P[prefix + "W"]
    src = f"shared_parameters.{ADAPTER}." if cfg["shared_phm_rule"] else prefix
    if cfg["factorized_phm_rule"]:
        rule = P[src + "phm_rule_left"] @ P[src + "phm_rule_right"]  # [n, n, 1] @ [n, 1, n]
    else:
        rule = P[src + "phm_rule"]
    n = cfg["phm_dim"]
    assert rule.shape == (n, n, n) and W.shape[0] == n
    H = sum(torch.kron(rule[i], W[i]) for i in range(n))
    y = x @ H
    if cfg["phm_bias"]:
        y = y + P[prefix + "b"]
    else:
        assert prefix + "b" not in P
    return y


def bottleneck_mlp(P, a, cfg, x):
    """up(act(down(ln_before(x)))) * scaling; `a` = `<slot>.adapters.golden.`."""
    if cfg["ln_before"]:
        x = layer_norm(x, P[a + "adapter_norm_before.weight"], P[a + "adapter_norm_before.bias"], 1e-5)
        down = a + "adapter_down.1."  # adapter_down.0 is the LayerNorm itself
    else:
        down = a + "adapter_down.0."
    if cfg["phm_layer"]:
        d = phm_linear(P, down, cfg, x)
        u = phm_linear(P, a + "adapter_up.", cfg, activation(cfg["non_linearity"], d))
    else:
        d = F.linear(x, P[down + "weight"], P[down + "bias"])
        u = F.linear(activation(cfg["non_linearity"], d), P[a + "adapter_up.weight"], P[a + "adapter_up.bias"])
    scaling = cfg["scaling"]
    if isinstance(scaling, str):
        assert scaling in ("learned", "channel")
        scaling = P[a + "scaling"]
    return u * scaling


def gate_value(P, a, x):
    """mean over the sequence (all positions, padding included) of sigmoid(gate(x)): [B, 1, 1]."""
    g = torch.sigmoid(F.linear(x, P[a + "gate.weight"], P[a + "gate.bias"]))  # [B, T, 1]
    return g.mean(dim=1, keepdim=True)


def reference_slot(P, slot, cfg, y, h, ln):
    """Output of the bottleneck slot `slot` for sublayer output y (`hidden_states`) and sublayer input h
    (`residual_input`); ln = (weight, bias, eps) of the host LayerNorm, or None (T5). Returns (output, gate or None)."""
    a = f"{slot}.adapters.{ADAPTER}."

    def host(v):
        return layer_norm(v, *ln) if ln is not None else v

    gate = None
    if cfg["is_parallel"]:
        x = h
        out = bottleneck_mlp(P, a, cfg, x)
        if cfg["use_gating"]:
            gate = gate_value(P, a, x)
            out = out * gate
        if cfg["ln_after"]:
            out = layer_norm(out, P[a + "adapter_norm_after.weight"], P[a + "adapter_norm_after.bias"], 1e-5)
        out = out + y
    else:
        rbl = cfg["residual_before_ln"]
        residual = y if rbl is True else None
        if cfg["original_ln_before"]:
            s = y + h
            if rbl == "post_add":
                assert ln is not None, "post_add needs a host LayerNorm (fails in the library otherwise)"
                residual = s
            x = host(s)
        else:
            x = y
        if rbl is False:
            residual = x
        assert residual is not None
        out = bottleneck_mlp(P, a, cfg, x)
        if cfg["use_gating"]:
            gate = gate_value(P, a, x)
            out = out * gate
        if cfg["adapter_residual_before_ln"]:
            out = out + residual
        if cfg["ln_after"]:
            out = layer_norm(out, P[a + "adapter_norm_after.weight"], P[a + "adapter_norm_after.bias"], 1e-5)
        if not cfg["adapter_residual_before_ln"]:
            out = out + residual
    if cfg["original_ln_after"]:
        out = host(out + h)
    return out, gate


def rel_diff(a, b):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-12))


# ----------------------------------------------------------------------------------------------------------------
# One case
# ----------------------------------------------------------------------------------------------------------------

def config_parts(cfg):
    """The bottleneck configs of a saved config dict: its parts for a union, else itself."""
    return cfg["configs"] if cfg.get("architecture") == "union" else [cfg]


def part_for_slot(cfg, location_key, layer):
    """The part of a (union) config that fills the slot at `location_key` of layer `layer`, as the library's
    `ModelAdaptersConfig.match` picks it: the first bottleneck part with that location enabled and the layer not left
    out."""
    for part in config_parts(cfg):
        if part.get(location_key) and layer not in (part.get("leave_out") or []):
            return part
    raise AssertionError(("no part for", location_key, layer))


def bottleneck_slots(model):
    """(path, module) of every BottleneckLayer, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BottleneckLayer)]


def save_adapter_folder(model, kind, adapter_dir):
    """model.save_adapter(adapter_dir, ADAPTER, use_safetensors=True) (T5: with_head=False). If safetensors refuses
    shared tensors (ln_before), save in the library's default torch format instead and convert that file: same keys,
    aliased tensors written as separate copies. Returns the error message of the safetensors attempt, or None."""
    kwargs = {"with_head": False} if kind == "t5" else {}
    try:
        model.save_adapter(adapter_dir, ADAPTER, use_safetensors=True, **kwargs)
        error = None
    except RuntimeError as e:
        error = " ".join(str(e).split())
        if "share memory" not in error:
            raise
        error = f"{type(e).__name__}: {error[:error.index(':') + 1]} [...]"
        shutil.rmtree(adapter_dir)
        model.save_adapter(adapter_dir, ADAPTER, use_safetensors=False, **kwargs)
        bin_path = os.path.join(adapter_dir, "pytorch_adapter.bin")
        state = torch.load(bin_path, weights_only=True)
        save_file({k: v.detach().clone().contiguous() for k, v in state.items()},
                  os.path.join(adapter_dir, "adapter.safetensors"))
        os.remove(bin_path)
    readme = os.path.join(adapter_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    assert sorted(os.listdir(adapter_dir)) == ["adapter.safetensors", "adapter_config.json"], os.listdir(adapter_dir)
    return error


def start_case(case, out_root):
    """A fresh case folder with the kind's base written into it (base_config.json, base_model.safetensors,
    inputs.safetensors), and the library's adapter of the case added to that base, trained-mode parameters
    perturbed, in eval mode. Returns (folder, config, inputs, base state, base output, model, the tied base keys
    not written)."""
    name, kind = case["name"], case["kind"]
    d = os.path.join(out_root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

    base, config, inputs = build_base(kind)
    base_state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    with torch.no_grad():
        _, base_output = forward(base, kind, inputs)
        base_output = base_output.detach().clone()
    with open(os.path.join(d, "base_config.json"), "w") as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)
        f.write("\n")
    base_file, base_tied = untied_state(base.state_dict())
    save_file(base_file, os.path.join(d, "base_model.safetensors"))
    save_file(inputs, os.path.join(d, "inputs.safetensors"))

    # Adapter: init, add, train_adapter (activates it and freezes everything else), perturb, eval.
    torch.manual_seed(case["seed"])
    model = base
    adapters.init(model)
    model.add_adapter(ADAPTER, config=case["config"]())
    model.train_adapter(ADAPTER)
    perturb(model, case["seed"] + 1000)
    model.eval()
    return d, config, inputs, base_state, base_output, model, base_tied


def run_case(case, out_root):
    name, kind = case["name"], case["kind"]
    d, config, inputs, base_state, base_output, model, base_tied = start_case(case, out_root)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    golden_params = {n for n, _ in model.named_parameters() if f"adapters.{ADAPTER}." in n
                     or n.startswith(f"shared_parameters.{ADAPTER}.")}
    assert set(trainable) == golden_params, sorted(set(trainable) ^ golden_params)
    assert not set(trainable) & set(base_state)
    params = {n: p.detach().clone().contiguous() for n, p in trainable.items()}
    # names under which a parameter is also reachable (state_dict lists both, named_parameters dedupes)
    by_ptr = {(p.data_ptr(), tuple(p.shape)): n for n, p in trainable.items()}
    aliases = {}
    for k, v in model.state_dict(keep_vars=True).items():
        n = by_ptr.get((v.data_ptr(), tuple(v.shape)))
        if n is not None and k != n:
            aliases[k] = n

    # adapter/ as save_adapter writes it
    adapter_dir = os.path.join(d, "adapter")
    save_error = save_adapter_folder(model, kind, adapter_dir)
    saved = load_file(os.path.join(adapter_dir, "adapter.safetensors"))
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        adapter_json = json.load(f)
    cfg = adapter_json["config"]
    unsaved = sorted(n for n in params if n not in saved)
    for k, v in saved.items():
        assert torch.equal(v, params[aliases.get(k, k)]), k
    assert set(saved) == (set(params) - set(unsaved)) | set(aliases), sorted(set(saved) ^ set(params))
    # Only the shared (model-level) parameters are missed: save_adapter's key filter wants ".shared_parameters.".
    assert all(n.startswith(f"shared_parameters.{ADAPTER}.") for n in unsaved), unsaved
    assert bool(unsaved) == any(n.startswith("shared_parameters.") for n in params)

    # Slots: every BottleneckLayer; record the arguments and result of bottleneck_layer_forward on those with the
    # adapter (BertSelfOutput/BertOutput and the T5 layers call self.bottleneck_layer_forward inside their forward).
    all_slots = bottleneck_slots(model)
    slots = [(p, m) for p, m in all_slots if ADAPTER in m.adapters]
    empty_slots = [p for p, m in all_slots if ADAPTER not in m.adapters]
    records, calls, host_norms = {}, {}, {}

    def wrap(path, module):
        original = module.bottleneck_layer_forward

        def recorded(hidden_states, residual_input, layer_norm):
            out = original(hidden_states, residual_input, layer_norm)
            calls[path] = calls.get(path, 0) + 1
            host_norms[path] = layer_norm
            records[f"slot.{path}.hidden_states"] = hidden_states.detach().clone()
            records[f"slot.{path}.residual_input"] = residual_input.detach().clone()
            records[f"slot.{path}.output"] = out.detach().clone()
            return out
        module.bottleneck_layer_forward = recorded

    for path, module in slots:
        wrap(path, module)
    model.zero_grad()
    use_gating = any(bool(part["use_gating"]) for part in config_parts(cfg))
    out, output = forward(model, kind, inputs, **({"output_adapter_gating_scores": True} if use_gating else {}))
    for _, module in slots:
        del module.bottleneck_layer_forward
    assert all(calls.get(p) == 1 for p, _ in slots), calls
    loss = (output ** 2).sum()
    loss.backward()
    effect = rel_diff(output, base_output)
    assert effect > MIN_EFFECT, (name, "the adapter does not change the output", effect)

    gates = {}
    if use_gating:
        scores = out["adapter_gating_scores"]
        assert set(scores) == {ADAPTER}
        for layer in sorted(scores[ADAPTER]):
            for loc in sorted(scores[ADAPTER][layer]):
                # A slot whose adapter has no gate still gets an entry: the library stores the adapter's last
                # output (`up`, the scaled up-projection) in its place. Not a gate; left out (see README).
                if not part_for_slot(cfg, loc, layer)["use_gating"]:
                    continue
                gates[f"gate.{layer}.{loc}"] = torch.from_numpy(scores[ADAPTER][layer][loc].copy())

    grads = {"loss": loss.detach().reshape(1)}
    for n, p in trainable.items():
        assert p.grad is not None and float(p.grad.abs().max()) > 0, (name, "zero gradient", n)
        grads["grad." + n] = p.grad.detach().clone()

    # Independent float64 check of every slot (and of the gating scores).
    P = {k: v.double() for k, v in params.items()}
    slot_info = []
    slot_worst = gate_worst = 0.0
    for path, module in slots:
        norm = host_norms[path]
        if kind == "bert":
            assert norm is module.LayerNorm
            ln = (norm.weight.detach().double(), norm.bias.detach().double(), norm.eps)
        else:
            assert norm is None
            ln = None
        y = records[f"slot.{path}.hidden_states"].double()
        h = records[f"slot.{path}.residual_input"].double()
        expected, gate = reference_slot(P, path, part_for_slot(cfg, module.location_key, module.layer_idx), y, h, ln)
        slot_worst = max(slot_worst, rel_diff(records[f"slot.{path}.output"], expected))
        layer = module.layer_idx
        if gate is not None:
            gate_worst = max(gate_worst, rel_diff(gates[f"gate.{layer}.{module.location_key}"], gate.reshape(-1)))
        adapter = module.adapters[ADAPTER]
        slot_info.append({"path": path, "module": type(module).__name__, "location_key": module.location_key,
                          "layer_idx": layer, "bottleneck": adapter.down_sample,
                          "host_layer_norm": f"{path}.LayerNorm" if kind == "bert" else None})
    assert slot_worst < REF_TOL, (name, "slot reference", slot_worst)
    assert gate_worst < REF_TOL, (name, "gate reference", gate_worst)
    if use_gating:
        assert sorted(gates) == sorted(f"gate.{s['layer_idx']}.{s['location_key']}" for s in slot_info
                                       if part_for_slot(cfg, s["location_key"], s["layer_idx"])["use_gating"])

    # The same library model in float64: forward and gradients.
    m64 = copy.deepcopy(model).double()
    m64.zero_grad()
    _, out64 = forward(m64, kind, inputs)
    (out64 ** 2).sum().backward()
    p64 = dict(m64.named_parameters())
    f64_out = rel_diff(output, out64)
    f64_grad = max(rel_diff(grads["grad." + n], p64[n].grad) for n in trainable)
    assert f64_out < F64_TOL and f64_grad < F64_TOL, (name, f64_out, f64_grad)
    del m64

    # Reload the written folder into a fresh base. Shared parameters are not in the folder: the reloaded adapter has
    # freshly initialized ones (different output) until they are copied in.
    reloaded = fresh_base(kind, config, base_state)
    adapters.init(reloaded)
    torch.manual_seed(case["seed"] + 2000)
    kwargs = {"with_head": False} if kind == "t5" else {}
    loaded_name = reloaded.load_adapter(adapter_dir, use_safetensors=True, set_active=True, **kwargs)
    assert loaded_name == ADAPTER
    reloaded.eval()
    with torch.no_grad():
        _, out_r = forward(reloaded, kind, inputs)
    reload_diff = rel_diff(out_r, output)
    checks = {"output_vs_base_rel_diff": effect, "slot_reference_rel_diff_max": slot_worst,
              "float64_library_output_rel_diff": f64_out, "float64_library_grad_rel_diff_max": f64_grad,
              "reload_rel_diff": reload_diff}
    if use_gating:
        checks["gate_reference_rel_diff_max"] = gate_worst
    if unsaved:
        assert reload_diff > MIN_EFFECT, (name, "reload without the shared parameters should differ", reload_diff)
        rp = dict(reloaded.named_parameters())
        with torch.no_grad():
            for n in unsaved:
                rp[n].copy_(params[n])
            _, out_r = forward(reloaded, kind, inputs)
        checks["reload_with_shared_parameters_copied_rel_diff"] = rel_diff(out_r, output)
        assert checks["reload_with_shared_parameters_copied_rel_diff"] < RELOAD_TOL, (name, checks)
        # The folder as PolyPEFT writes it (AdapterHubFolderTests): the library's, plus the shared parameters under
        # their state-dict keys. load_adapter reads them (its loader filters only what it reports as missing).
        with tempfile.TemporaryDirectory() as tmp:
            complete = os.path.join(tmp, "adapter")
            shutil.copytree(adapter_dir, complete)
            state = load_file(os.path.join(complete, "adapter.safetensors"))
            state.update({n: params[n] for n in unsaved})
            save_file(state, os.path.join(complete, "adapter.safetensors"))
            again = fresh_base(kind, config, base_state)
            adapters.init(again)
            torch.manual_seed(case["seed"] + 3000)
            again.load_adapter(complete, use_safetensors=True, set_active=True, **kwargs)
            again.eval()
            with torch.no_grad():
                _, out_c = forward(again, kind, inputs)
        checks["reload_with_shared_parameters_in_file_rel_diff"] = rel_diff(out_c, output)
        assert checks["reload_with_shared_parameters_in_file_rel_diff"] < RELOAD_TOL, (name, checks)
    else:
        assert reload_diff < RELOAD_TOL, (name, "reload", reload_diff)

    outputs = {"base_output": base_output, "output": output.detach().clone()}
    outputs.update(records)
    outputs.update(gates)
    save_file(params, os.path.join(d, "adapter_parameters.safetensors"))
    save_file(outputs, os.path.join(d, "outputs.safetensors"))
    save_file(grads, os.path.join(d, "grads.safetensors"))

    shapes = lambda t: {k: list(v.shape) for k, v in sorted(t.items())}
    entry = {
        "name": name,
        "model_kind": kind,
        "notes": case["notes"],
        "config": cfg,
        "adapter_file_keys": shapes(saved),
        "adapter_file_aliases": {k: aliases[k] for k in sorted(aliases)},
        "save_adapter_safetensors_error": save_error,
        "parameter_keys": shapes(params),
        "parameters_not_in_adapter_file": unsaved,
        "slots": slot_info,
        "slots_without_adapter": empty_slots,
        "gate_keys": shapes(gates),
        "inputs": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                   for k, v in sorted(inputs.items())},
        "output_shape": list(output.shape),
        "base_tied_keys_not_written": base_tied,
        "checks": checks,
    }
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    print(f"{name}: {size / 1024:.1f} KB, {len(slots)} slots, checks {json.dumps(checks)}")
    return entry


def probe_broken(item):
    kind = item["kind"]
    torch.manual_seed(0)
    config = bert_config() if kind == "bert" else t5_config()
    model = new_model(kind, config).eval()
    inputs = transformer_inputs(kind)
    adapters.init(model)
    stage = "add_adapter"
    try:
        model.add_adapter(ADAPTER, config=eval(item["call"]))
        model.train_adapter(ADAPTER)
        model.eval()
        stage = "forward"
        forward(model, kind, inputs)
        stage = "save_adapter"
        with tempfile.TemporaryDirectory() as tmp:
            model.save_adapter(tmp, ADAPTER, use_safetensors=True, **({"with_head": False} if kind == "t5" else {}))
    except Exception as e:  # noqa: BLE001 (the failure is the point)
        message = " ".join(str(e).split())
        if len(message) > 160:
            message = message[:160] + " ..."
        assert stage == item["stage"], (item["name"], stage, message)
        return {"name": item["name"], "model_kind": kind, "config": item["call"], "fails_in": stage,
                "error": f"{type(e).__name__}: {message}", "why": item["why"]}
    raise AssertionError(f"{item['name']} no longer fails")


# ----------------------------------------------------------------------------------------------------------------
# README
# ----------------------------------------------------------------------------------------------------------------

def write_readme(out_root, entries, broken, versions, total_bytes):
    base_bytes = sum(os.path.getsize(os.path.join(out_root, e["name"], "base_model.safetensors")) for e in entries)
    rows = []
    for e in entries:
        size = sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(os.path.join(out_root, e["name"]))
                   for fn in fs)
        rows.append(f"| `{e['name']}` | {e['model_kind']} | {len(e['slots'])} | {size // 1024} KB | {e['notes']} |")
    broken_rows = [f"| `{b['config']}` | {b['model_kind']} | {b['fails_in']} | `{b['error']}` | {b['why']} |"
                   for b in broken]
    per_case = []
    for e in entries:
        slots = ", ".join(f"`{s['path']}` ({s['location_key']}, layer {s['layer_idx']}, bottleneck "
                          f"{s['bottleneck']})" for s in e["slots"])
        extra = []
        if e["parameters_not_in_adapter_file"]:
            extra.append("not in `adapter/`: " + ", ".join(f"`{n}`" for n in e["parameters_not_in_adapter_file"]))
        if e["adapter_file_aliases"]:
            extra.append(f"{len(e['adapter_file_aliases'])} alias keys in `adapter/` (`adapter_down.0.*` = "
                         "`adapter_norm_before.*`)")
        if e["save_adapter_safetensors_error"]:
            extra.append("adapter file converted from the torch format (safetensors save fails)")
        if e["gate_keys"]:
            extra.append("gates: " + ", ".join(f"`{k}` {v}" for k, v in e["gate_keys"].items()))
        if e["slots_without_adapter"]:
            extra.append("slots without adapter: " + ", ".join(f"`{p}`" for p in e["slots_without_adapter"]))
        per_case.append(f"- `{e['name']}`: {len(e['parameter_keys'])} parameters, {len(e['adapter_file_keys'])} "
                        f"adapter-file keys; slots {slots}" + ("; " + "; ".join(extra) if extra else "") + ".")
    text = (README.replace("{{VERSIONS}}", ", ".join(f"{k} {v}" for k, v in versions.items()))
            .replace("{{CASES}}", "\n".join(rows))
            .replace("{{BROKEN}}", "\n".join(broken_rows))
            .replace("{{PER_CASE}}", "\n".join(per_case))
            .replace("{{BASE_BYTES}}", str(base_bytes // 1024))
            .replace("{{TOTAL_BYTES}}", str(total_bytes // 1024)))
    with open(os.path.join(out_root, "README.md"), "w") as f:
        f.write(text)




def main(out_root):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out_root, exist_ok=True)
    entries = [run_case(c, out_root) for c in CASES]
    broken = [probe_broken(b) for b in BROKEN]
    versions = {"adapters": adapters.__version__, "transformers": transformers.__version__,
                "torch": torch.__version__, "safetensors": safetensors.__version__,
                "python": platform.python_version()}
    index = {"versions": versions, "adapter_name": ADAPTER, "cases": entries, "broken_combinations": broken}
    with open(os.path.join(out_root, "cases.json"), "w") as f:
        f.write(compact_json(index) + "\n")
    # (the size written into the README is that of everything but the README itself, so it is stable)
    total = sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(out_root) for fn in fs
                if os.path.join(r, fn) != os.path.join(out_root, "README.md"))
    write_readme(out_root, entries, broken, versions, total)
    total = sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(out_root) for fn in fs)
    print(f"wrote {out_root} ({total / 1024:.0f} KB)")


README = """# Golden vectors for bottleneck adapters (AdapterHub `adapters`)

Reference results of the `adapters` library (AdapterHub) for bottleneck adapters: sequential (Pfeiffer `SeqBnConfig`,
Houlsby `DoubleSeqBnConfig`), parallel (`ParBnConfig`), the generic `BnConfig` options and the PHM layers of
`CompacterConfig` / `CompacterPlusPlusConfig`, on tiny models built from code (random weights, no downloads). One
sub-folder per case; `cases.json` is the index (config, keys and shapes, slots, checks).

## Provenance

- {{VERSIONS}}; CPU, one thread, `torch.use_deterministic_algorithms(True)`.
- Written by `Benchmarks/golden/make_bottleneck_cases.py` with the venv that has `adapters` (adapters 1.3.0 pins
  transformers ~=4.57.6, so it is not the venv of the PEFT generators):

      /work/venv-adapters/bin/python Benchmarks/golden/make_bottleneck_cases.py Tests/PolyPEFTTests/Resources/golden_bottleneck

  (`pip install adapters==1.3.0 transformers==4.57.6 torch==2.13.0 safetensors==0.8.0`, CPU wheel of torch.) Rerunning gives
  byte-identical folders: fixed seeds, one thread, and the script re-executes itself with `PYTHONHASHSEED=0` and
  `HF_HUB_OFFLINE=1`. It deletes and rewrites each case folder.
- Checks, all enforced by the script (numbers in `cases.json` under `checks`):
  - every recorded slot: `output` recomputed in float64 plain torch from the slot's `hidden_states`,
    `residual_input`, the host LayerNorm and `adapter_parameters.safetensors` with the formulas below, < 2e-5
    relative to the largest magnitude (achieved ~1e-7); the gating scores likewise;
  - the same library model converted to float64 (`model.double()`): output and every gradient agree with the float32
    ones to < 2e-5;
  - `output` differs from `base_output` (relative difference > 1e-3) and every gradient tensor is non-zero;
  - `adapter/` reloaded with `load_adapter(dir, use_safetensors=True)` into a fresh base reproduces `output` (< 1e-6),
    except where the shared PHM parameters are missing from the folder (see below: the reload then differs, and
    matches again once the shared parameters from `adapter_parameters.safetensors` are copied in);
  - every key of `adapter/adapter.safetensors` equals the parameter (or alias) of that name.

## Cases

| case | model | slots | size | what |
| --- | --- | --- | --- | --- |
{{CASES}}

Models (the same base weights and inputs for every case of a kind: seeded per kind, so `base_model.safetensors`,
`base_config.json`, `inputs.safetensors` and `base_output` are identical across the cases of a kind):

- `bert` = `BertModel(config, add_pooling_layer=False)`: hidden 16, 2 layers, 4 heads of 4, intermediate 32, vocab
  50, max positions 32, eager attention, dropout 0, `initializer_range` 0.2, LayerNorm eps 1e-12. Inputs
  `input_ids`, `attention_mask` (row 1 padded from position 4), `token_type_ids` (positions 3.. are type 1), all
  [3, 6] int64. Output: `last_hidden_state` [3, 6, 16].
- `t5` = `T5ForConditionalGeneration`: d_model 16, 2 encoder + 2 decoder blocks, 4 heads of d_kv 4, d_ff 32, relu,
  vocab 50, 8 relative buckets, max distance 16, tied embeddings, eager attention, dropout 0. Inputs
  `input_ids`/`attention_mask` [2, 5] (row 1 padded from position 4), `decoder_input_ids` [2, 4] (first token 0).
  Output: `logits` [2, 4, 50].
- All base LayerNorm / T5 layer-norm weights are 1 + 0.5 N(0,1), LayerNorm biases 0.5 N(0,1).

## Files per case

- `base_config.json`: `config.to_dict()` (sorted keys, indent 2).
- `base_model.safetensors`: the base `state_dict()` before `adapters.init`, HF key names. T5: the tied embedding is
  written once as `shared.weight`; `encoder.embed_tokens.weight`, `decoder.embed_tokens.weight` and `lm_head.weight`
  are the same tensor (`tie_word_embeddings`) and are not written (listed under `base_tied_keys_not_written` in
  `cases.json`), as `save_pretrained` does.
- `inputs.safetensors`: the inputs above.
- `adapter/adapter_config.json`, `adapter/adapter.safetensors`: what `model.save_adapter(dir, "golden",
  use_safetensors=True)` writes (T5 with `with_head=False`: by default `save_adapter` of a
  `T5ForConditionalGeneration` also writes `head_config.json` and `model_head.safetensors` holding `lm_head.weight`,
  i.e. the tied base embedding). The adapter config is under `"config"` in `adapter_config.json` (plus `name`,
  `model_type`, `model_class`, `hidden_size`, `version`); a bottleneck config has no `architecture` key. Exceptions
  (see "Library findings"): with `ln_before` the file is the library's torch-format file converted, and the shared PHM
  parameters are never in the folder.
- `adapter_parameters.safetensors`: every trainable parameter after `train_adapter("golden")`, under its
  `named_parameters()` name (deduplicated: each tensor once); no base parameter. E.g.
  `encoder.layer.0.output.adapters.golden.adapter_down.0.weight`, `shared_parameters.golden.phm_rule`.
- `outputs.safetensors` (eval mode):
  - `base_output`: the base model before `adapters.init`;
  - `output`: the model with the adapter active (`train_adapter("golden")`, then `eval()`);
  - for every slot that holds the adapter (a `BottleneckLayer` module, path relative to the model):
    `slot.<path>.hidden_states` = the sublayer output y after its dropout (the `hidden_states` argument of
    `bottleneck_layer_forward`), `slot.<path>.residual_input` = the sublayer input h (the residual stream),
    `slot.<path>.output` = what the slot returns (the new residual stream). These are recorded by wrapping
    `bottleneck_layer_forward` on the module instance (the host layers call it inside their own forward).
  - with `use_gating`: `gate.<layer_idx>.<location_key>` = the gating scores the library returns for
    `forward(..., output_adapter_gating_scores=True)` (`outputs.adapter_gating_scores["golden"][layer_idx][location_key]`,
    a numpy array: the gate [B, 1, 1] squeezed to [B]; `layer_idx` is the library's global layer index, see T5
    numbering below).
- `grads.safetensors`: `loss` = sum(output^2) ([1]) and `grad.<name>` for every tensor of
  `adapter_parameters.safetensors` (eval mode, so adapter dropout is off).

Slot paths: BERT `encoder.layer.N.attention.output` (`BertSelfOutput`, location `mh_adapter`) and
`encoder.layer.N.output` (`BertOutput`, `output_adapter`); the host LayerNorm is that module's `LayerNorm`
(`<path>.LayerNorm.weight/bias` in the base model, eps 1e-12) and the sublayer output y = dropout(dense(...)). T5
`encoder.block.N.layer.0` (`T5LayerSelfAttention`, `mh_adapter`), `encoder.block.N.layer.1` (`T5LayerFF`,
`output_adapter`), `decoder.block.N.layer.0` (self-attention, `mh_adapter`), `decoder.block.N.layer.1`
(`T5LayerCrossAttention`, `cross_adapter`, only with `cross_adapter=True`), `decoder.block.N.layer.2` (`T5LayerFF`,
`output_adapter`); T5 passes no LayerNorm (`layer_norm=None`), y = dropout(sublayer(layer_norm(h))) (the T5 layer
norm is inside the sublayer, before it). The adapter of a slot lives at `<path>.adapters.golden.`.

Per case:

{{PER_CASE}}

## Parameter names (per slot, prefix `<path>.adapters.golden.`)

| name | shape | when |
| --- | --- | --- |
| `adapter_norm_before.weight`, `.bias` | [H], [H] | `ln_before` (nn.LayerNorm, eps 1e-5) |
| `adapter_down.K.weight`, `.bias` | [m, H], [m] | plain Linear; K = 0, or 1 with `ln_before` (index 0 is then the LayerNorm) |
| `adapter_down.K.W_left`, `.W_right` | [n, H/n, r], [n, r, m/n] | PHM down projection, `factorized_phm_W` |
| `adapter_down.K.W` | [n, H/n, m/n] | PHM down projection, `factorized_phm_W=False` |
| `adapter_down.K.b` | [m] | PHM down projection, `phm_bias` |
| `adapter_up.weight`, `.bias` | [H, m], [H] | plain Linear |
| `adapter_up.W_left`, `.W_right` / `adapter_up.W` / `adapter_up.b` | [n, m/n, r], [n, r, H/n] / [n, m/n, H/n] / [H] | PHM up projection (as above) |
| `adapter_down.K.phm_rule`, `adapter_up.phm_rule` | [n, n, n] | PHM, `shared_phm_rule=False` |
| `adapter_down.K.phm_rule_left`, `.phm_rule_right` (same for `adapter_up.`) | [n, n, 1], [n, 1, n] | PHM, `shared_phm_rule=False`, `factorized_phm_rule` |
| `scaling` | [1] / [H] | `scaling="learned"` / `"channel"` (a float is a constant, not a parameter) |
| `adapter_norm_after.weight`, `.bias` | [H], [H] | `ln_after` (nn.LayerNorm, eps 1e-5) |
| `gate.weight`, `gate.bias` | [1, H], [1] | `use_gating` |

Model-level (PHM with `shared_phm_rule=True`): `shared_parameters.golden.phm_rule` [n, n, n], or
`shared_parameters.golden.phm_rule_left` [n, n, 1] / `.phm_rule_right` [n, 1, n] with `factorized_phm_rule`. H = 16
(hidden), m = the bottleneck = int(H // reduction_factor) (at least 1), n = `phm_dim`, r = `phm_rank`. No `b` with
`phm_bias=False`. The activation is a parameterless module `adapter_down.(K+1)`.

Aliases: with `ln_before`, `adapter_down.0` IS `adapter_norm_before` (the same module in two places), so
`state_dict()` (and therefore the adapter file) has both `adapter_norm_before.weight/bias` and
`adapter_down.0.weight/bias` (equal values), while `named_parameters()` (and `adapter_parameters.safetensors`,
`grads.safetensors`) lists only `adapter_norm_before.*`. `cases.json` lists every alias under
`adapter_file_aliases`. A loader must accept both names (or either).

Reduction factor: a number, or a mapping from the string of the library's global layer index to a factor with a
`"default"` (`{"0": 2, "default": 8}`: layer 0 gets 16 // 2 = 8, others 16 // 8 = 2).

## The computation

Notation for one slot: y = `hidden_states` (sublayer output), h = `residual_input` (sublayer input), LN = the host
LayerNorm (BERT: the module's `LayerNorm`; T5: none, read LN(v) as v). `methods/bottleneck.py`
`BottleneckLayer.bottleneck_layer_forward` calls `pre_forward`, the adapter's `forward` and `post_forward` of
`methods/modeling.py` `Adapter` (sequential) or `ParallelAdapter`.

    MLP(x)  = up(act(down(ln_before(x)))) * scaling        (ln_before: adapter LayerNorm if configured, else identity)
    gate(x) = mean over the sequence axis (ALL positions, padding included) of sigmoid(x W_g^T + b_g)   -> [B, 1, 1]

Sequential (`Adapter`; `is_parallel=False`):

    residual = y                          if residual_before_ln is True
    if original_ln_before:
        s = y + h
        if residual_before_ln == "post_add": residual = s      (only when a host LayerNorm exists: see findings)
        x = LN(s)                         (T5: x = s)
    else:
        x = y
    if residual_before_ln is False: residual = x
    out = MLP(x)
    if use_gating: out = out * gate(x)
    if adapter_residual_before_ln: out = out + residual
    if ln_after: out = LN_after(out)
    if not adapter_residual_before_ln: out = out + residual
    if original_ln_after: out = LN(out + h)   (T5: out + h)

Parallel (`ParallelAdapter`; `is_parallel=True`; `original_ln_before`, `residual_before_ln` and
`adapter_residual_before_ln` are ignored):

    out = MLP(h)
    if use_gating: out = out * gate(h)
    if ln_after: out = LN_after(out)
    out = out + y
    if original_ln_after: out = LN(out + h)   (T5: out + h)

(With `original_ln_after=False` the slot returns `out` without adding h: the host's own residual and LayerNorm are
then skipped entirely.) Dropout (`dropout`) acts on `up * scaling` before the gate and is off in eval mode. `act`:
`relu`, `tanh`, `gelu` = exact erf GELU (`GELUActivation`), `swish` = SiLU x * sigmoid(x) (transformers
`get_activation`). Adapter LayerNorms use eps 1e-5 (nn.LayerNorm default). A slot without an active adapter
computes LN(y + h) (BERT) / y + h (T5), i.e. the unmodified model.

PHM linear (`PHMLayer.forward`; in -> out features, n = `phm_dim`):

    W    = bmm(W_left, W_right)              [n, in/n, out/n]   (W itself with factorized_phm_W=False)
    rule = phm_rule                          [n, n, n]          (bmm(phm_rule_left, phm_rule_right) if factorized)
           (from shared_parameters.golden.* with shared_phm_rule, else the layer's own)
    H    = sum_i kron(rule[i], W[i])         [in, out]          H[a*in/n + p, c*out/n + q] = sum_i rule[i,a,c] W[i,p,q]
    y    = x @ H + b                         (no transpose: H is [in, out]; no b with phm_bias=False)

The formulas above are what the library computes; the script's float64 re-implementation (`reference_slot`,
`bottleneck_mlp`, `phm_linear`, `gate_value`) follows them literally.

## Library findings (adapters 1.3.0)

- **T5 layer numbering** (`leave_out`, per-layer `reduction_factor`, gating-score `layer_idx`):
  `T5ModelAdaptersMixin.iter_layers` numbers the encoder blocks 0 .. L_enc-1 and continues with the decoder blocks:
  decoder block i is layer L_enc + i. Here (2 + 2 blocks) decoder block 0 is layer 2, decoder block 1 is layer 3.
  `doubleseqbn_t5` (`leave_out=[1]`) therefore leaves out encoder block 1 only (its `layer.0` and `layer.1` have no
  adapter), and both decoder blocks get self-attention, cross-attention and FFN adapters.
- **Gating scores of adapters without a gate**: with `output_adapter_gating_scores=True` every bottleneck slot of
  the adapter stores an entry, and a slot whose adapter has no gate (a union part without `use_gating`, as in
  `union_t5`) stores the adapter's last return value instead, its scaled up-projection `[B, T, H]`
  (`compose_single` stores `layer_output[-1]`, which is `up` when no gate is returned). Those entries are not gates
  and are left out of `outputs.safetensors`; PolyPEFT records gates only where there is one.
- **Shared PHM parameters are not saved**: `save_adapter`'s key filter (`AdapterLoader.filter_func`, loading.py) keeps
  `".shared_parameters.golden."`, with a leading dot; on a bare `BertModel` / `T5ForConditionalGeneration` (the model
  is its own base model) the key is `shared_parameters.golden.phm_rule` (no leading dot), so the shared rule is
  silently dropped from `adapter.safetensors` (it would be saved for a model with a prefix, e.g.
  `bert.shared_parameters...`). `load_adapter` of such a folder then runs with a freshly initialized rule (different
  outputs; checked). Affected: `compacter_bert`, `compacter_pp_t5` (`phm_rule`), `compacter_rank_bert`
  (`phm_rule_left`, `phm_rule_right`); they are in `adapter_parameters.safetensors` and listed under
  `parameters_not_in_adapter_file` in `cases.json`. The folders are left as the library writes them. PolyPEFT
  writes the shared parameters into the file under those state-dict keys; `load_adapter` reads them (it loads every
  key of the file that names a module, and filters only the keys it reports as missing), and the folder with them
  added reproduces `output` (checked: `reload_with_shared_parameters_in_file_rel_diff`).
- **`ln_before` cannot be saved as safetensors**: the aliased LayerNorm (above) makes `save_adapter(...,
  use_safetensors=True)` raise `RuntimeError: Some tensors share memory ...`. For `bn_options_bert` and
  `bn_parallel_options_t5` the script saves in the library's default format (`pytorch_adapter.bin`, `torch.save` of
  the same filtered state dict), converts that file to `adapter.safetensors` (same keys, the aliased tensors as two
  equal copies) and deletes the `.bin`; `adapter_config.json` is the library's. `load_adapter(..., use_safetensors=True)`
  reads the converted folder back exactly (checked).
- **Option combinations that fail in the library** (probed at every run; the Swift side should refuse them):

| combination | model | fails in | error | why |
| --- | --- | --- | --- | --- |
{{BROKEN}}

  `shared_W_phm=True` works in the library with a factorized W and a numeric reduction factor (`compacter_shared_w_bert`);
  its shared `W_down_left/right`, `W_up_left/right` are missing from `save_adapter`'s output like the shared rule.
- **Gating or scaling directly under `ln_after` is (almost) dead**: when nothing is added between the gate and the
  adapter LayerNorm (parallel adapters always; sequential ones with `adapter_residual_before_ln=False`),
  `LN_after(g * v)` with g a per-sample scalar depends on g only through the LayerNorm eps (1e-5): the gate's effect
  and its gradient are ~0, and the float32 gradient of `gate.weight/bias` is rounding noise (1e-3 relative
  disagreement with float64 in the configuration first planned for `bn_parallel_options_t5`, which had `ln_after=True`
  with `use_gating=True`). That case was therefore adjusted to `ln_after=False`, and `bn_parallel_ln_after_bert`
  (parallel + `ln_after`, no gating) was added. The same holds for a scalar `scaling` under `ln_after` (a
  `scaling="learned"` parameter would get a ~0, noisy gradient): `bn_parallel_ln_after_bert` uses a
  constant 2.0, `bn_options_bert` puts the residual before the after-LN. A `scaling="channel"` vector is not
  cancelled (LN is not invariant to a per-channel scale), only its common factor is.
- No contradiction with the formulas given for this set was found; details the formulas make explicit: the gate is
  the sequence MEAN of sigmoid (padding positions included), taken on the adapter input x (sequential: after the
  original LN; parallel: h), multiplies after the scaling, and its score is returned squeezed to [B]; a parallel
  adapter ignores `original_ln_before` / `residual_before_ln` / `adapter_residual_before_ln`; with `ln_before` the
  down projection is `adapter_down.1`.

## Size

Every case folder carries its own `base_model.safetensors` (BERT 27 KB, T5 50 KB), identical within a kind; git
stores identical files once, so the bases cost 77 KB in the repository although they are {{BASE_BYTES}} KB on disk
(of {{TOTAL_BYTES}} KB in total).
"""


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
