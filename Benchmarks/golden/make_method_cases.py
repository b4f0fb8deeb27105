#!/usr/bin/env python3
"""Writes golden cases for (IA)^3, LoRA/DoRA variants, BEFT, LN tuning and the prompt-learning methods (prefix tuning,
prompt tuning, P-tuning) from the real Hugging Face stack: tiny
models built from code (an MLP, a BertModel, a T5ForConditionalGeneration; random weights, no downloads), the PEFT
adapter exactly as `save_pretrained` writes it, inputs, eval-mode outputs with per-layer intermediates, and gradients
of sum(output^2) with respect to every saved adapter tensor.

    python3 Benchmarks/golden/make_method_cases.py OUT_DIR     # e.g. Tests/PolyPEFTTests/Resources/golden_methods

Writes OUT_DIR/<case>/..., OUT_DIR/cases.json and OUT_DIR/README.md. Needs torch, transformers, peft and
safetensors (see Benchmarks/golden/README.md for the pinned versions). Deterministic: fixed seeds, one thread, and
the script re-executes itself with PYTHONHASHSEED=0 (PEFT keeps target_modules in a set and writes it as a list, so
the order in adapter_config.json would otherwise change from run to run) and HF_HUB_OFFLINE=1.

Besides writing, the script checks every case against an independent float64 re-implementation in plain torch ops
that reads only the written files (base weights, adapter_config.json, adapter_model.safetensors, inputs) and follows
the formulas of OUT_DIR/README.md: outputs and gradients must agree, otherwise the script fails. It also reloads each
adapter with PeftModel.from_pretrained (outputs must match) and, for the non-prompt methods, merges it
(merge_and_unload) and compares again.
"""
import os
import sys

if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("HF_HUB_OFFLINE") != "1":
    env = dict(os.environ, PYTHONHASHSEED="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import json
import math
import platform
import re
import shutil
import warnings

import torch
import torch.nn.functional as F
import peft
import safetensors
import transformers
from peft import (BeftConfig, IA3Config, LNTuningConfig, LoraConfig, PeftModel, PrefixTuningConfig,
                  PromptEncoderConfig, PromptTuningConfig, get_peft_model)
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import BertModel, T5ForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_models import bert_config, randomize_norms, t5_config, transformer_inputs  # noqa: E402

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()

# float32 PEFT result vs float64 re-implementation, relative to the largest magnitude of the compared tensor
REF_TOL = 2e-5
# PEFT model vs the same adapter reloaded with from_pretrained (same float32 computation)
RELOAD_TOL = 1e-6
# merged (merge_and_unload) vs unmerged forward
MERGE_TOL = 1e-5


# ----------------------------------------------------------------------------------------------------------------
# Base models
# ----------------------------------------------------------------------------------------------------------------

MLP_ARCH = [
    {"op": "linear", "name": "fc1", "in": 16, "out": 32, "bias": True},
    {"op": "relu"},
    {"op": "linear", "name": "fc2", "in": 32, "out": 8, "bias": True},
]


class MLP(torch.nn.Module):
    """fc1 (16 -> 32, bias), ReLU, fc2 (32 -> 8, bias): the `architecture` op list of cases.json."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 32)
        self.relu = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(32, 8)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def build_base(kind):
    if kind == "mlp":
        return MLP().eval(), None
    if kind == "bert":
        config = bert_config()
        model = BertModel(config, add_pooling_layer=False).eval()
    else:
        config = t5_config()
        model = T5ForConditionalGeneration(config).eval()
    randomize_norms(model)
    return model, config


def fresh_base(kind, config, state):
    if kind == "mlp":
        model = MLP()
    elif kind == "bert":
        model = BertModel(config, add_pooling_layer=False)
    else:
        model = T5ForConditionalGeneration(config)
    model.load_state_dict(state)
    return model.eval()


def make_inputs(kind):
    if kind == "mlp":
        return {"x": torch.randn(4, 3, 16)}
    return transformer_inputs(kind)


def run_model(model, kind, inputs, x=None):
    """Forward of a base model or a PeftModel; returns the compared output tensor."""
    if kind == "mlp":
        return model(inputs["x"] if x is None else x)
    out = model(**inputs)
    return out.last_hidden_state if kind == "bert" else out.logits


# ----------------------------------------------------------------------------------------------------------------
# Making adapters non-trivial (the state a trained adapter would be in)
# ----------------------------------------------------------------------------------------------------------------

def perturb_named(marker, change):
    """A perturbation that sets every parameter whose name contains `marker` to change(p), in parameter order."""
    def perturb(model):
        with torch.no_grad():
            for name, p in model.named_parameters():
                if marker in name:
                    p.copy_(change(p))
    return perturb


# IA3 vectors start at 1, BEFT biases at 0 and the LN-tuning copies at the base norms (each the base model): give
# them trained-looking values.
perturb_ia3 = perturb_named(".ia3_l.", lambda p: 1.0 + 0.5 * torch.randn_like(p))
perturb_beft = perturb_named(".beft_bias.", lambda p: 0.5 * torch.randn_like(p))
perturb_ln_tuning = perturb_named(".ln_tuning_layers.", lambda p: p + 0.3 * torch.randn_like(p))


def perturb_lora(model, perturb_biases=()):
    # init_lora_weights=False already gives random (kaiming-uniform) A and B and, with lora_bias, a random B bias.
    # DoRA magnitudes start at ||W + s B A|| (row norms), i.e. an output scale of exactly 1: perturb them.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_magnitude_vector." in name:
                p.mul_(1.0 + 0.3 * torch.randn_like(p))
            if any(name.endswith(b) for b in perturb_biases):
                p.add_(0.5 * torch.randn_like(p))


def perturb_nothing(model):
    pass




# ----------------------------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------------------------

CASES = [
    dict(name="ia3_mlp", kind="mlp", seed=10, perturb=perturb_ia3,
         config=lambda: IA3Config(target_modules=["fc1", "fc2"], feedforward_modules=["fc2"]),
         notes="(IA)^3 on fc1 (output scaling, ia3_l [32, 1]) and fc2 (feed-forward: input scaling, ia3_l [1, 32]); "
               "vectors 1 + 0.5 N(0,1)."),
    dict(name="ia3_bert", kind="bert", seed=11, perturb=perturb_ia3,
         config=lambda: IA3Config(),
         notes="(IA)^3 with PEFT's BERT defaults: target key, value, output.dense; feed-forward output.dense, which "
               "matches both attention.output.dense and output.dense; vectors 1 + 0.5 N(0,1)."),
    dict(name="ia3_t5", kind="t5", seed=12, perturb=perturb_ia3,
         config=lambda: IA3Config(task_type="SEQ_2_SEQ_LM"),
         notes="(IA)^3 with PEFT's T5 defaults: target k, v (encoder/decoder self-attention and cross-attention) and "
               "wo; feed-forward wo; vectors 1 + 0.5 N(0,1)."),
    dict(name="dora_mlp", kind="mlp", seed=20, perturb=perturb_lora,
         config=lambda: LoraConfig(r=2, lora_alpha=4, target_modules=["fc1", "fc2"], use_dora=True,
                                   init_lora_weights=False),
         notes="DoRA (r 2, alpha 4) on fc1 and fc2; random A and B, magnitudes perturbed by (1 + 0.3 N(0,1))."),
    dict(name="dora_rslora_mlp", kind="mlp", seed=21, perturb=perturb_lora,
         config=lambda: LoraConfig(r=2, lora_alpha=4, target_modules=["fc1", "fc2"], use_dora=True, use_rslora=True,
                                   init_lora_weights=False),
         notes="DoRA with rsLoRA scaling alpha/sqrt(r) (r 2, alpha 4) on fc1 and fc2; magnitudes perturbed."),
    dict(name="dora_bert", kind="bert", seed=22, perturb=perturb_lora,
         config=lambda: LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value"], use_dora=True,
                                   init_lora_weights=False),
         notes="DoRA (r 2, alpha 4) on BERT query and value; random A and B, magnitudes perturbed."),
    dict(name="lora_bias_all_mlp", kind="mlp", seed=30,
         perturb=lambda m: perturb_lora(m, perturb_biases=("fc1.base_layer.bias", "fc2.bias")),
         config=lambda: LoraConfig(r=2, lora_alpha=4, target_modules=["fc1"], bias="all", init_lora_weights=False),
         notes="LoRA (r 2, alpha 4) on fc1 only with bias='all': every bias of the model (fc1's, inside the LoRA "
               "layer, and fc2's, not adapted) is trainable and saved; both were moved by 0.5 N(0,1)."),
    dict(name="lora_bias_lora_only_mlp", kind="mlp", seed=31,
         perturb=lambda m: perturb_lora(m, perturb_biases=("fc1.base_layer.bias",)),
         config=lambda: LoraConfig(r=2, lora_alpha=4, target_modules=["fc1"], bias="lora_only",
                                   init_lora_weights=False),
         notes="LoRA (r 2, alpha 4) on fc1 only with bias='lora_only': only the bias of the adapted fc1 is trainable "
               "and saved (fc2's is not); it was moved by 0.5 N(0,1)."),
    dict(name="lora_patterns_mlp", kind="mlp", seed=32, perturb=perturb_lora,
         config=lambda: LoraConfig(r=2, lora_alpha=4, target_modules=["fc1", "fc2"], rank_pattern={"fc2": 4},
                                   alpha_pattern={"fc1": 16}, init_lora_weights=False),
         notes="LoRA r 2, alpha 4 with rank_pattern {fc2: 4} and alpha_pattern {fc1: 16}: fc1 r 2 alpha 16 "
               "(scaling 8), fc2 r 4 alpha 4 (scaling 1)."),
    dict(name="lora_lora_bias_mlp", kind="mlp", seed=33, perturb=perturb_lora,
         config=lambda: LoraConfig(r=2, lora_alpha=4, target_modules=["fc1", "fc2"], lora_bias=True,
                                   init_lora_weights=False),
         notes="LoRA (r 2, alpha 4) with lora_bias=True on fc1 and fc2: lora_B has a bias (random), scaled like "
               "the rest of the update."),
    dict(name="prefix_bert", kind="bert", seed=40, perturb=perturb_nothing,
         config=lambda: PrefixTuningConfig(num_virtual_tokens=3, task_type="FEATURE_EXTRACTION"),
         notes="Prefix tuning, 3 virtual tokens, no projection; prompt_embeddings [3, 64] keep PEFT's N(0,1) init; "
               "PeftModelForFeatureExtraction drops token_type_ids."),
    dict(name="prefix_proj_bert", kind="bert", seed=41, perturb=perturb_nothing,
         config=lambda: PrefixTuningConfig(num_virtual_tokens=3, task_type="FEATURE_EXTRACTION",
                                           prefix_projection=True, encoder_hidden_size=8),
         notes="Prefix tuning with prefix_projection (encoder_hidden_size 8): PEFT saves only the projected "
               "prompt_embeddings [3, 64]; the MLP is in prompt_encoder.safetensors for training checks."),
    dict(name="prefix_t5", kind="t5", seed=42, perturb=perturb_nothing,
         config=lambda: PrefixTuningConfig(num_virtual_tokens=3, task_type="SEQ_2_SEQ_LM"),
         notes="Prefix tuning on T5 (SEQ_2_SEQ_LM), 3 virtual tokens: only decoder self-attention receives a prefix, "
               "and with 2 layers both decoder layers get the same one (slices 0 and 1)."),
    dict(name="beft_mlp", kind="mlp", seed=50, perturb=perturb_beft,
         config=lambda: BeftConfig(target_modules=["fc1", "fc2"]),
         notes="BEFT on fc1 and fc2: beft_bias [1, out] added to the output; biases 0.5 N(0,1)."),
    dict(name="beft_bert", kind="bert", seed=51, perturb=perturb_beft,
         config=lambda: BeftConfig(),
         notes="BEFT with PEFT's BERT default target (value); biases 0.5 N(0,1)."),
    dict(name="beft_t5", kind="t5", seed=52, perturb=perturb_beft,
         config=lambda: BeftConfig(task_type="SEQ_2_SEQ_LM"),
         notes="BEFT with PEFT's T5 default target (v, every attention); T5's linears have no bias, so this adapter "
               "cannot be merged (not checked)."),
    dict(name="ln_tuning_bert", kind="bert", seed=53, perturb=perturb_ln_tuning,
         config=lambda: LNTuningConfig(target_modules=["LayerNorm"]),
         notes="LN tuning of every BERT LayerNorm (embeddings and both per layer; PEFT has no BERT default): the "
               "copies' weights and biases moved by 0.3 N(0,1)."),
    dict(name="ln_tuning_t5", kind="t5", seed=54, perturb=perturb_ln_tuning,
         config=lambda: LNTuningConfig(task_type="SEQ_2_SEQ_LM"),
         notes="LN tuning with PEFT's T5 defaults (layer_norm, final_layer_norm: every RMS norm); copies moved by "
               "0.3 N(0,1)."),
    dict(name="prompt_bert", kind="bert", seed=55, perturb=perturb_nothing,
         config=lambda: PromptTuningConfig(num_virtual_tokens=3, task_type="FEATURE_EXTRACTION"),
         notes="Prompt tuning, 3 virtual tokens (RANDOM init, N(0,1)) prepended to the input embeddings; "
               "PeftModelForFeatureExtraction drops token_type_ids; output [3, 3 + 6, 16]."),
    dict(name="prompt_t5", kind="t5", seed=56, perturb=perturb_nothing,
         config=lambda: PromptTuningConfig(num_virtual_tokens=3, task_type="SEQ_2_SEQ_LM"),
         notes="Prompt tuning on T5 (SEQ_2_SEQ_LM): prompt_embeddings [6, 16] (2 submodules), the first 3 rows "
               "prepended to the encoder input; the other 3 are unused (zero gradient)."),
    dict(name="ptuning_bert", kind="bert", seed=57, perturb=perturb_nothing,
         config=lambda: PromptEncoderConfig(num_virtual_tokens=3, task_type="FEATURE_EXTRACTION",
                                            encoder_hidden_size=8),
         notes="P-tuning (MLP head, encoder_hidden_size 8): PEFT saves only the MLP's output prompt_embeddings "
               "[3, 16]; the encoder is in prompt_encoder.safetensors for training checks."),
]


# ----------------------------------------------------------------------------------------------------------------
# Independent float64 re-implementation (reads only the written files)
# ----------------------------------------------------------------------------------------------------------------

def pattern_value(patterns, key, default):
    """rank_pattern / alpha_pattern lookup: the first pattern p (in dict order) for which the whole module path
    matches the regex (.*\\.)?(p)$ wins; else the exact path as a key; else the default."""
    for p in patterns:
        if re.match(rf"(.*\.)?({p})$", key):
            return patterns[p]
    return patterns.get(key, default)


def module_matches(names, path):
    """target_modules (a list): the path equals a name or ends with '.' + name."""
    return path in names or any(path.endswith("." + n) for n in names)


class Reference:
    """Adapted linear layers as formulas over the saved tensors (float64 leaves that collect gradients)."""

    def __init__(self, base_state, adapter_config, adapter_tensors, linear_paths):
        self.cfg = adapter_config
        self.W = {k: v.double() for k, v in base_state.items()}
        self.leaves = {k: v.double().clone().requires_grad_(True) for k, v in adapter_tensors.items()}
        self.kind = adapter_config["peft_type"]
        self.adapted = {}  # path -> tensors of that layer
        for key, t in self.leaves.items():
            if not key.startswith("base_model.model."):
                continue
            rest = key[len("base_model.model."):]
            if ".ln_tuning_layers." in rest:
                # LN tuning: the tuned copy's weight / bias replace the norm's
                self.W[rest.replace(".ln_tuning_layers.", ".")] = t
                continue
            if rest.endswith(".bias") and (".base_layer." in rest or "lora_" not in rest):
                # bias='all' / 'lora_only': a base bias, saved under the base layer's name
                self.W[rest.replace(".base_layer.", ".")] = t
                continue
            for suffix in (".ia3_l", ".lora_A.weight", ".lora_B.weight", ".lora_B.bias", ".lora_magnitude_vector",
                           ".beft_bias"):
                if rest.endswith(suffix):
                    self.adapted.setdefault(rest[: -len(suffix)], {})[suffix[1:]] = t
        if self.kind in ("IA3", "LORA", "BEFT"):
            targets = adapter_config["target_modules"]
            names = [p for p in linear_paths if module_matches(targets, p)]
            assert sorted(names) == sorted(self.adapted), (names, sorted(self.adapted))

    def lin(self, path, x):
        w = self.W[path + ".weight"]
        b = self.W.get(path + ".bias")
        a = self.adapted.get(path)
        if a is None or self.kind not in ("IA3", "LORA", "BEFT"):
            return F.linear(x, w, b)
        if self.kind == "BEFT":
            assert a["beft_bias"].shape == (1, w.shape[0])
            return F.linear(x, w, b) + a["beft_bias"].flatten()
        if self.kind == "IA3":
            l = a["ia3_l"]
            ff = module_endswith(self.cfg["feedforward_modules"], path)
            assert (l.shape == (1, w.shape[1])) if ff else (l.shape == (w.shape[0], 1))
            return F.linear(x * l.flatten(), w, b) if ff else F.linear(x, w, b) * l.flatten()
        A, B = a["lora_A.weight"], a["lora_B.weight"]
        r = pattern_value(self.cfg["rank_pattern"] or {}, path, self.cfg["r"])
        alpha = pattern_value(self.cfg["alpha_pattern"] or {}, path, self.cfg["lora_alpha"])
        assert A.shape == (r, w.shape[1]) and B.shape == (w.shape[0], r)
        s = alpha / math.sqrt(r) if self.cfg["use_rslora"] else alpha / r
        if "lora_magnitude_vector" in a:
            m = a["lora_magnitude_vector"]
            norm = torch.linalg.norm(w + s * (B @ A).detach(), dim=1).detach()
            y = (m / norm) * (F.linear(x, w) + s * F.linear(F.linear(x, A), B))
            return y + b if b is not None else y
        delta = F.linear(F.linear(x, A), B)
        if "lora_B.bias" in a:
            delta = delta + a["lora_B.bias"]
        return F.linear(x, w, b) + s * delta


def module_endswith(names, path):
    """IA3 feedforward_modules (a list): plain suffix test, no '.' boundary."""
    return any(path.endswith(n) for n in names)


def prefix_layout(ref, num_layers, seq2seq):
    """Per attention layer (key, value), each [heads, P, head_dim], from the saved prompt_embeddings
    [P, num_layers * 2 * hidden] (see README)."""
    cfg = ref.cfg
    pe = ref.leaves["prompt_embeddings"]
    P, nh = cfg["num_virtual_tokens"], cfg["num_attention_heads"]
    hd = cfg["token_dim"] // nh
    slices = pe.view(P, 2 * num_layers, nh, hd).permute(1, 2, 0, 3)  # [2L, heads, P, head_dim]
    if not seq2seq:
        return [(slices[2 * i], slices[2 * i + 1]) for i in range(num_layers)]
    n = 2 * num_layers
    return [(slices[(4 * i) % n], slices[(4 * i + 1) % n]) for i in range(num_layers)]


def layer_norm(W, x, name, eps):
    return F.layer_norm(x, (x.shape[-1],), W[name + ".weight"], W[name + ".bias"], eps)


def bert_reference(ref, config, inputs, prefix, prompt=None):
    """prefix: per layer (key, value) prefixes; prompt: virtual token embeddings [V, H] prepended to the input."""
    W, lin = ref.W, ref.lin
    ids, mask = inputs["input_ids"], inputs["attention_mask"].double()
    B, T = ids.shape
    nh = config.num_attention_heads
    hd = config.hidden_size // nh
    P = 0 if prefix is None else prefix[0][0].shape[1]
    # prefix tuning: PEFT drops token_type_ids (BERT then uses type 0) and positions start at P
    types = inputs["token_type_ids"] if prefix is None and prompt is None else None
    pos = torch.arange(P, P + T)
    words = W["embeddings.word_embeddings.weight"][ids]
    if prompt is not None:
        # prompt tuning: inputs_embeds = cat(prompts, words); positions 0..V+T-1; mask extended with ones; token
        # types dropped (FEATURE_EXTRACTION)
        V = prompt.shape[0]
        words = torch.cat([prompt[None].expand(B, -1, -1), words], dim=1)
        mask = torch.cat([torch.ones(B, V, dtype=mask.dtype), mask], dim=1)
        T = T + V
        pos = torch.arange(T)
    if types is None:
        types = torch.zeros(B, T, dtype=torch.long)
    x = (words + W["embeddings.position_embeddings.weight"][pos] + W["embeddings.token_type_embeddings.weight"][types])
    eps = config.layer_norm_eps
    x = layer_norm(W, x, "embeddings.LayerNorm", eps)
    keymask = mask if prefix is None else torch.cat([torch.ones(B, P, dtype=mask.dtype), mask], dim=1)
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        heads = lambda t: t.view(B, T, nh, hd).transpose(1, 2)
        q, k, v = (heads(lin(p + "attention.self." + n, x)) for n in ("query", "key", "value"))
        if prefix is not None:
            pk, pv = prefix[i]
            k = torch.cat([pk.expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([pv.expand(B, -1, -1, -1), v], dim=2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(keymask[:, None, None, :] == 0, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = layer_norm(W, lin(p + "attention.output.dense", a) + x, p + "attention.output.LayerNorm", eps)
        h = F.gelu(lin(p + "intermediate.dense", x))
        x = layer_norm(W, lin(p + "output.dense", h) + x, p + "output.LayerNorm", eps)
    return x


def t5_bucket(rel, bidirectional, num_buckets, max_distance):
    """T5's relative position bucket (own re-implementation; the log is evaluated in float32 as transformers does)."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        n = (-rel).clamp(min=0)
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(n < max_exact, n, large)


def t5_reference(ref, config, inputs, prefix, prompt=None):
    """prefix: decoder self-attention prefixes; prompt: virtual token embeddings [V, d] prepended to the encoder input."""
    W, lin = ref.W, ref.lin
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    dec = inputs["decoder_input_ids"]
    B, T = ids.shape
    x = W["shared.weight"][ids]
    if prompt is not None:
        V = prompt.shape[0]
        x = torch.cat([prompt[None].expand(B, -1, -1), x], dim=1)
        mask = torch.cat([torch.ones(B, V, dtype=mask.dtype), mask], dim=1)
        T = T + V
    Td = dec.shape[1]
    nh, hd = config.num_heads, config.d_kv
    nb, md = config.relative_attention_num_buckets, config.relative_attention_max_distance
    eps = config.layer_norm_epsilon

    def rms(x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * W[name]

    def attention(path, h, kv, bias, visible, pk=None, pv=None):
        Tq, Tk = h.shape[1], kv.shape[1]
        q = lin(path + ".q", h).view(B, Tq, nh, hd).transpose(1, 2)
        k = lin(path + ".k", kv).view(B, Tk, nh, hd).transpose(1, 2)
        v = lin(path + ".v", kv).view(B, Tk, nh, hd).transpose(1, 2)
        if pk is not None:
            k = torch.cat([pk.expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([pv.expand(B, -1, -1, -1), v], dim=2)
        s = q @ k.transpose(-1, -2) + bias  # T5 does not scale by 1/sqrt(head_dim)
        s = s.masked_fill(~visible, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, Tq, nh * hd)
        return lin(path + ".o", a)

    def feed_forward(p, x):
        h = rms(x, p + "layer_norm.weight")
        return x + lin(p + "DenseReluDense.wo", torch.relu(lin(p + "DenseReluDense.wi", h)))

    # encoder: no prefix, bidirectional relative bias of block 0 shared by all blocks
    rel = torch.arange(T)[None, :] - torch.arange(T)[:, None]
    enc_bias = W["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][
        t5_bucket(rel, True, nb, md)].permute(2, 0, 1)[None]
    enc_visible = (mask[:, None, None, :] == 1)
    for i in range(config.num_layers):
        p = f"encoder.block.{i}.layer."
        h = rms(x, p + "0.layer_norm.weight")
        x = x + attention(p + "0.SelfAttention", h, h, enc_bias, enc_visible)
        x = feed_forward(p + "1.", x)
    enc = rms(x, "encoder.final_layer_norm.weight")

    # decoder: P prefix positions 0..P-1, tokens at P..P+Td-1; causal; unidirectional relative bias
    P = 0 if prefix is None else prefix[0][0].shape[1]
    qpos = torch.arange(Td) + P
    kpos = torch.arange(P + Td)
    rel = kpos[None, :] - qpos[:, None]
    dec_bias = W["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][
        t5_bucket(rel, False, nb, md)].permute(2, 0, 1)[None]
    dec_visible = (kpos[None, :] <= qpos[:, None])[None, None]
    y = W["shared.weight"][dec]
    for i in range(config.num_decoder_layers):
        p = f"decoder.block.{i}.layer."
        pk, pv = (None, None) if prefix is None else prefix[i]
        h = rms(y, p + "0.layer_norm.weight")
        y = y + attention(p + "0.SelfAttention", h, h, dec_bias, dec_visible, pk, pv)
        h = rms(y, p + "1.layer_norm.weight")
        y = y + attention(p + "1.EncDecAttention", h, enc, 0.0, enc_visible)  # no position bias in cross-attention
        y = feed_forward(p + "2.", y)
    y = rms(y, "decoder.final_layer_norm.weight")
    if config.tie_word_embeddings and getattr(config, "scale_decoder_outputs", True):
        y = y * config.d_model ** -0.5
    return y @ W["lm_head.weight"].T


def mlp_reference(ref, x):
    for op in MLP_ARCH:
        x = ref.lin(op["name"], x) if op["op"] == "linear" else torch.relu(x)
    return x


def rel_diff(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-12))


# ----------------------------------------------------------------------------------------------------------------
# One case
# ----------------------------------------------------------------------------------------------------------------

def saved_key_to_param(model, saved):
    """Map every saved adapter key to the model parameter holding that tensor (same storage)."""
    by_ptr = {}
    for n, p in model.named_parameters():
        by_ptr.setdefault((p.data_ptr(), tuple(p.shape)), n)
    sd = get_peft_model_state_dict(model)
    assert sorted(sd) == sorted(saved), (sorted(sd), sorted(saved))
    params = dict(model.named_parameters())
    out = {}
    for k, v in sd.items():
        name = by_ptr.get((v.data_ptr(), tuple(v.shape)))
        assert name is not None, f"no parameter holds saved key {k}"
        out[k] = params[name]
    return out


def checkpoint_name(param_name):
    """A trained model's parameter name as the saved key (without base_model.model.): adapter name removed; DoRA's
    `lora_magnitude_vector.default.weight` is saved as `lora_magnitude_vector`."""
    n = re.sub(r"\.default(\.|$)", r"\1", param_name).replace("base_model.model.", "", 1)
    return n[: -len(".weight")] if n.endswith("lora_magnitude_vector.weight") else n


def tuner_layers(peft_model):
    root = peft_model.get_base_model()
    return [(n, m) for n, m in root.named_modules() if isinstance(m, BaseTunerLayer)]


def run_case(case, out_root):
    name, kind = case["name"], case["kind"]
    d = os.path.join(out_root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    torch.manual_seed(case["seed"])
    base, config = build_base(kind)
    base_state = {k: v.detach().clone().contiguous() for k, v in base.state_dict().items()}
    inputs = make_inputs(kind)
    with torch.no_grad():
        base_output = run_model(base, kind, inputs).detach().clone()
    if config is not None:
        with open(os.path.join(d, "base_config.json"), "w") as f:
            json.dump(config.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
    save_file(base_state, os.path.join(d, "base_model.safetensors"))
    save_file(inputs, os.path.join(d, "inputs.safetensors"))

    torch.manual_seed(case["seed"] + 1000)
    model = get_peft_model(base, case["config"]())
    case["perturb"](model)
    model.eval()
    adapter_dir = os.path.join(d, "adapter")
    model.save_pretrained(adapter_dir)
    readme = os.path.join(adapter_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        adapter_config = json.load(f)
    is_prefix = adapter_config["peft_type"] == "PREFIX_TUNING"
    is_prompt = adapter_config["peft_type"] in ("PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING")
    projected = adapter_config.get("prefix_projection") or adapter_config["peft_type"] == "P_TUNING"

    # Eval forward of the PEFT model with per-layer intermediates (forward hooks on the tuner layers).
    records = {}
    handles = []
    for path, module in tuner_layers(model):
        if kind == "t5" and ".block.0." not in path:
            continue  # keeps the T5 cases small: block 0 (encoder and decoder) only, input and output only
        def hook(module, args, output, path=path):
            x = args[0]
            with torch.no_grad():
                records[f"layer.{path}.input"] = x.detach().clone()
                if kind != "t5":  # (the T5 cases stay small without it)
                    records[f"layer.{path}.base_output"] = module.get_base_layer()(x).detach().clone()
                records[f"layer.{path}.output"] = output.detach().clone()
        handles.append(module.register_forward_hook(hook))
    if is_prefix:
        # the past key values PEFT builds (get_prompt), per attention layer that receives them
        B = inputs["input_ids"].shape[0]
        with torch.no_grad():
            cache = model.get_prompt(B)
        self_cache = cache.self_attention_cache if kind == "t5" else cache
        for i, layer in enumerate(self_cache.layers):
            records[f"prefix.{i}.key"] = layer.keys.detach().clone()
            records[f"prefix.{i}.value"] = layer.values.detach().clone()
        if kind == "t5":
            assert len(cache.cross_attention_cache.layers) == 0
    model.zero_grad()
    x = inputs["x"].clone().requires_grad_(True) if kind == "mlp" else None
    peft_output = run_model(model, kind, inputs, x)
    for h in handles:
        h.remove()
    loss = (peft_output ** 2).sum()
    loss.backward()
    # (prompt tuning on BERT adds positions: compare the input's own positions, the last ones)
    assert rel_diff(peft_output[:, -base_output.shape[1]:], base_output) > 1e-3, "the adapter does not change the output"

    # Gradients of the trained model's own parameters (for prefix_projection: the MLP, saved separately).
    own_grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                 for n, p in model.named_parameters() if p.requires_grad}

    # Gradients with respect to exactly the saved tensors: reload the adapter (inference mode) into a fresh base from
    # base_model.safetensors, let only the saved tensors (and the MLP input) require grad, and rerun.
    reloaded = PeftModel.from_pretrained(fresh_base(kind, config, load_file(os.path.join(d, "base_model.safetensors"))),
                                         adapter_dir)
    reloaded.eval()
    key_param = saved_key_to_param(reloaded, saved)
    for p in reloaded.parameters():
        p.requires_grad_(False)
    for p in key_param.values():
        p.requires_grad_(True)
    x2 = inputs["x"].clone().requires_grad_(True) if kind == "mlp" else None
    out2 = run_model(reloaded, kind, inputs, x2)
    reload_diff = rel_diff(out2, peft_output)
    assert reload_diff < RELOAD_TOL, (name, "reload", reload_diff)
    loss2 = (out2 ** 2).sum()
    loss2.backward()
    grads = {"loss": loss.detach().reshape(1)}
    for k in sorted(saved):
        p = key_param[k]
        grads["grad." + k] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    if kind == "mlp":
        grads["grad.input.x"] = x.grad.detach().clone()
        assert rel_diff(x2.grad, x.grad) < RELOAD_TOL
    # Where the saved tensor is the trained parameter itself, both routes must agree. With prefix_projection the saved
    # tensor is the MLP's output: the MLP and its gradients go to extra entries.
    extra_files = {}
    if projected:
        enc = model.prompt_encoder["default"]
        # (kept out of grads.safetensors, which holds exactly the gradients of the saved tensors)
        extra = {k: v.detach().clone().contiguous() for k, v in enc.state_dict().items()}
        for k in enc.state_dict():
            extra["grad." + k] = own_grads["prompt_encoder.default." + k]
        extra_files["prompt_encoder.safetensors"] = extra
        enc.zero_grad()
        table = enc(torch.arange(enc.embedding.num_embeddings)[None])[0]
        assert rel_diff(table, saved["prompt_embeddings"]) < 1e-7
        # chain rule: the MLP's gradients are the saved tensor's gradient pulled back through the projection
        table.backward(grads["grad.prompt_embeddings"])
        for k, prm in enc.named_parameters():
            assert rel_diff(prm.grad, extra["grad." + k]) < 1e-5, k
    elif is_prompt:
        assert rel_diff(own_grads["prompt_encoder.default.embedding.weight"], grads["grad.prompt_embeddings"]) < 1e-6
    else:
        for k, p in key_param.items():
            mine = k.replace("base_model.model.", "", 1)
            matches = [n for n in own_grads if checkpoint_name(n) == mine]
            assert len(matches) == 1, (k, matches)
            assert rel_diff(own_grads[matches[0]], grads["grad." + k]) < 1e-6, k
    for k in saved:
        assert float(grads["grad." + k].abs().max()) > 0 or k == "prompt_embeddings", f"{name}: zero gradient for {k}"

    # Merge check (non-prompt methods): merge_and_unload reproduces the adapted output.
    merge_diff = None
    if not is_prompt and not (adapter_config["peft_type"] == "BEFT" and kind == "t5"):
        merged = PeftModel.from_pretrained(fresh_base(kind, config, base_state), adapter_dir).merge_and_unload().eval()
        with torch.no_grad():
            merge_diff = rel_diff(run_model(merged, kind, inputs), peft_output)
        assert merge_diff < MERGE_TOL, (name, "merge", merge_diff)

    # For bias='all' / 'lora_only' the adapter carries base biases: the PEFT model with its adapter disabled is the
    # base with those biases, which differs from base_output (the untouched base).
    outputs = {"base_output": base_output, "peft_output": peft_output.detach().clone()}
    outputs.update(records)
    if adapter_config.get("bias", "none") != "none":
        with torch.no_grad(), model.disable_adapter():
            outputs["disabled_output"] = run_model(model, kind, inputs).detach().clone()

    # Independent float64 re-implementation from the written files only.
    loaded_inputs = load_file(os.path.join(d, "inputs.safetensors"))
    if kind == "mlp":
        linear_paths = [op["name"] for op in MLP_ARCH if op["op"] == "linear"]
    else:
        linear_paths = [n for n, m in fresh_base(kind, config, base_state).named_modules()
                        if isinstance(m, torch.nn.Linear)]
    ref = Reference(load_file(os.path.join(d, "base_model.safetensors")), adapter_config, saved, linear_paths)
    if kind == "mlp":
        xr = loaded_inputs["x"].double().requires_grad_(True)
        ref_out = mlp_reference(ref, xr)
    else:
        prefix = prompt = None
        if adapter_config["peft_type"] in ("PROMPT_TUNING", "P_TUNING"):
            prompt = ref.leaves["prompt_embeddings"][: adapter_config["num_virtual_tokens"]]
        if is_prefix:
            layers = config.num_hidden_layers if kind == "bert" else config.num_decoder_layers
            prefix = prefix_layout(ref, adapter_config["num_layers"], adapter_config["num_transformer_submodules"] == 2)
            assert len(prefix) == layers
            for i, (pk, pv) in enumerate(prefix):
                assert rel_diff(records[f"prefix.{i}.key"][0], pk) < 1e-7
                assert rel_diff(records[f"prefix.{i}.value"][0], pv) < 1e-7
        ref_out = (bert_reference if kind == "bert" else t5_reference)(ref, config, loaded_inputs, prefix, prompt)
    checks = {"reference_output_rel_diff": rel_diff(peft_output, ref_out)}
    ref_loss = (ref_out ** 2).sum()
    ref_loss.backward()
    worst = 0.0
    for k, leaf in ref.leaves.items():
        g = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        worst = max(worst, rel_diff(grads["grad." + k], g))
    if kind == "mlp":
        worst = max(worst, rel_diff(grads["grad.input.x"], xr.grad))
    checks["reference_grad_rel_diff_max"] = worst
    checks["reference_loss_rel_diff"] = rel_diff(loss.detach(), ref_loss.detach())
    checks["reload_rel_diff"] = reload_diff
    if merge_diff is not None:
        checks["merge_rel_diff"] = merge_diff
    for k, v in checks.items():
        if k.startswith("reference"):
            assert v < REF_TOL, (name, k, v)
    if kind != "mlp" and not is_prompt:
        # per-layer: output = formula(input) for every adapted layer
        layer_worst = 0.0
        for path, _ in tuner_layers(model):
            if f"layer.{path}.input" not in records:
                continue
            xin = records[f"layer.{path}.input"].double()
            if adapter_config["peft_type"] == "LN_TUNING":
                expected = (layer_norm(ref.W, xin, path, config.layer_norm_eps) if kind == "bert" else
                            xin * torch.rsqrt(xin.pow(2).mean(-1, keepdim=True) + config.layer_norm_epsilon)
                            * ref.W[path + ".weight"])
            else:
                expected = ref.lin(path, xin)
            layer_worst = max(layer_worst, rel_diff(records[f"layer.{path}.output"], expected))
        checks["reference_layer_rel_diff_max"] = layer_worst
        assert layer_worst < REF_TOL, (name, layer_worst)

    save_file(outputs, os.path.join(d, "outputs.safetensors"))
    save_file(grads, os.path.join(d, "grads.safetensors"))
    for fname, tensors in extra_files.items():
        save_file(tensors, os.path.join(d, fname))

    entry = {
        "name": name,
        "peft_type": adapter_config["peft_type"],
        "model_kind": kind,
        "task_type": adapter_config.get("task_type"),
        "notes": case["notes"],
    }
    if kind == "mlp":
        entry["architecture"] = MLP_ARCH
    entry["adapter_config"] = adapter_config
    entry["saved_keys"] = {k: list(v.shape) for k, v in sorted(saved.items())}
    entry["inputs"] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                       for k, v in sorted(inputs.items())}
    entry["output_shape"] = list(peft_output.shape)
    entry["has_disabled_output"] = "disabled_output" in outputs
    entry["extra_files"] = sorted(extra_files)
    entry["checks"] = checks
    write_case_readme(d, entry, outputs, grads, base_state, extra_files)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    print(f"{name}: {size / 1024:.1f} KB, checks {json.dumps(checks)}")
    return entry


# ----------------------------------------------------------------------------------------------------------------
# READMEs
# ----------------------------------------------------------------------------------------------------------------

def table(tensors):
    rows = ["| key | shape | dtype |", "| --- | --- | --- |"]
    for k in sorted(tensors):
        v = tensors[k]
        rows.append(f"| `{k}` | {list(v.shape)} | {str(v.dtype).replace('torch.', '')} |")
    return "\n".join(rows)


def write_case_readme(d, entry, outputs, grads, base_state, extra_files):
    name = entry["name"]
    cfg = json.dumps(entry["adapter_config"], indent=2, sort_keys=True)
    saved = load_file(os.path.join(d, "adapter", "adapter_model.safetensors"))
    inputs = load_file(os.path.join(d, "inputs.safetensors"))
    model_line = {
        "mlp": "MLP `fc1` (16 -> 32, bias), ReLU, `fc2` (32 -> 8, bias) — the `architecture` op list in `../cases.json`.",
        "bert": "`BertModel` without pooler from `base_config.json` (hidden 16, 2 layers, 4 heads, vocab 50, eager "
                "attention, dropout 0, initializer_range 0.2, LayerNorms with random affine parameters). Output: "
                "`last_hidden_state`.",
        "t5": "`T5ForConditionalGeneration` from `base_config.json` (d_model 16, 2 encoder + 2 decoder blocks, 4 heads "
              "of 4, d_ff 32, vocab 50, relu, tied embeddings, eager attention, dropout 0, layer norms with random "
              "weights). Output: `logits`.",
    }[entry["model_kind"]]
    extra = ""
    if "prompt_encoder.safetensors" in extra_files:
        extra = ("\n### `prompt_encoder.safetensors`\n\nNot part of the saved adapter: the trained model's prefix "
                 "encoder (`embedding.weight` [P, token_dim], `transform.0` Linear(token_dim, encoder_hidden_size), "
                 "tanh, `transform.2` Linear(encoder_hidden_size, num_layers*2*token_dim)); "
                 "`prompt_embeddings` = transform(embedding.weight). `grad.<key>`: d loss / d that parameter of the "
                 "trained model (same loss).\n\n" + table(extra_files["prompt_encoder.safetensors"]) + "\n")
    disabled = ""
    if entry["has_disabled_output"]:
        disabled = ("- `disabled_output`: the PEFT model under `disable_adapter()`. With bias != 'none' the saved base "
                    "biases are part of the adapter but stay in force when the adapter is disabled, so this is the "
                    "base with the adapter's biases and differs from `base_output`.\n")
    text = f"""# Golden case `{name}`

Written by `Benchmarks/golden/make_method_cases.py` (versions and the formulas: `../README.md`). {entry['notes']}

Model: {model_line}

## Adapter config (`adapter/adapter_config.json`, as written by PEFT)

```json
{cfg}
```

## Files

### `adapter/adapter_model.safetensors` (PEFT `save_pretrained`; the model-card README it writes was deleted)

{table(saved)}

### `base_model.safetensors`

The base model's `state_dict()` before PEFT wrapping ({len(base_state)} tensors{', tied T5 embeddings written once per key' if entry['model_kind'] == 't5' else ''}).

### `inputs.safetensors`

{table(inputs)}

### `outputs.safetensors` (eval mode)

- `base_output`: the base model alone (before wrapping).
- `peft_output`: the PEFT model (`model.eval()`, PEFT's own forward).
{disabled}- `layer.<path>.input` / `.base_output` / `.output` (adapted layers only): what reached the tuner layer, the wrapped
  layer's own output for it, and the tuner layer's output (T5 cases: block 0 of encoder and decoder, no `.base_output`).
- `prefix.<i>.key` / `.value` (prefix tuning): the key/value prefix PEFT's `get_prompt` hands to attention layer `i`
  ([batch, heads, P, head_dim]; for T5 the decoder self-attention of block `i`).

{table(outputs)}

### `grads.safetensors`

`loss` = sum(peft_output^2) ([1]); `grad.<key>` = d loss / d (saved tensor `<key>` of adapter_model.safetensors), in
eval mode{'; `grad.input.x` = d loss / d x' if entry['model_kind'] == 'mlp' else ''}.

{table(grads)}
{extra}
## Checks (relative to the largest magnitude of the compared tensor)

```json
{json.dumps(entry['checks'], indent=2, sort_keys=True)}
```
"""
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write(text)


def write_index(out_root, entries):
    with open(os.path.join(out_root, "cases.json"), "w") as f:
        json.dump({"cases": entries}, f, indent=2, sort_keys=True)
        f.write("\n")


def main(out_root):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out_root, exist_ok=True)
    entries = [run_case(c, out_root) for c in CASES]
    write_index(out_root, entries)
    versions = {"torch": torch.__version__, "peft": peft.__version__, "transformers": transformers.__version__,
                "safetensors": safetensors.__version__, "python": platform.python_version()}
    template = METHODS_README
    rows = []
    for e in entries:
        size = sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(os.path.join(out_root, e["name"]))
                   for fn in fs)
        rows.append(f"| `{e['name']}` | {e['peft_type']} | {e['model_kind']} | {e['task_type'] or '-'} | "
                    f"{size // 1024} KB | {e['notes']} |")
    text = (template.replace("{{VERSIONS}}", ", ".join(f"{k} {v}" for k, v in versions.items()))
            .replace("{{CASES}}", "\n".join(rows)))
    with open(os.path.join(out_root, "README.md"), "w") as f:
        f.write(text)
    print("wrote", out_root)


METHODS_README = """# Golden vectors for (IA)^3, LoRA/DoRA variants, BEFT, LN tuning and prompt learning

Reference results of the real Hugging Face PEFT library on tiny models built from code (random weights, no
downloads). Each sub-folder is one case; its own README lists every file, key and shape; `cases.json` is the index.

## Provenance

- {{VERSIONS}}; CPU, one thread, `torch.use_deterministic_algorithms(True)`.
- Written by `Benchmarks/golden/make_method_cases.py OUT_DIR` (regenerate:
  `python3 Benchmarks/golden/make_method_cases.py Tests/PolyPEFTTests/Resources/golden_methods`; see
  `Benchmarks/golden/README.md` for the pinned `pip install`). Rerunning gives identical files: fixed seeds (one per
  case), and the script re-executes itself with `PYTHONHASHSEED=0` (PEFT keeps `target_modules` in a set, so the
  order of that list in `adapter_config.json` depends on the hash seed; it has no meaning) and `HF_HUB_OFFLINE=1`.
- Every case is checked by the generator against an independent float64 re-implementation in plain torch ops that
  reads only the written files and follows the formulas below (`Reference`, `bert_reference`, `t5_reference`,
  `prefix_layout` in the script): outputs, loss and every gradient agree to < 2e-5 relative to the largest magnitude
  (the achieved numbers are in `cases.json` under `checks`, typically 1e-7 to 1e-6). The adapter is also reloaded
  with `PeftModel.from_pretrained` (identical outputs) and, for the non-prompt methods, merged with
  `merge_and_unload` (same outputs to < 1e-5).

## Cases

| case | peft_type | model | task_type | size | what |
| --- | --- | --- | --- | --- | --- |
{{CASES}}

Models: `mlp` = `fc1` Linear(16, 32, bias), ReLU, `fc2` Linear(32, 8, bias) (`architecture` in `cases.json`), input
`x` [4, 3, 16]. `bert` = `BertModel` without pooler (hidden 16, 2 layers, 4 heads of 4, intermediate 32, vocab 50,
max positions 32, eager attention, dropout 0, `initializer_range` 0.2 so that attention is far from uniform),
inputs `input_ids`, `attention_mask` (row 1 padded from position 4), `token_type_ids` (positions 3.. are type 1), all
[3, 6] int64; output `last_hidden_state` [3, 6, 16]. `t5` = `T5ForConditionalGeneration` (d_model 16, 2 encoder + 2
decoder blocks, 4 heads of d_kv 4, d_ff 32, relu, vocab 50, 8 relative buckets, max distance 16, tied embeddings,
eager attention, dropout 0), inputs `input_ids`/`attention_mask` [2, 5] (row 1 padded from position 4) and
`decoder_input_ids` [2, 4] (first token 0 = decoder start; no decoder mask); output `logits` [2, 4, 50]. All
LayerNorm / T5 layer-norm weights are 1 + 0.5 N(0,1) and LayerNorm biases 0.5 N(0,1).

## File layout (per case)

- `adapter/adapter_config.json`, `adapter/adapter_model.safetensors`: PEFT `save_pretrained` (its model-card
  README deleted). Keys carry `base_model.model.` and no adapter name, except prefix tuning (`prompt_embeddings`).
- `base_model.safetensors`: the base `state_dict()` before wrapping (T5: `shared.weight`,
  `encoder.embed_tokens.weight`, `decoder.embed_tokens.weight`, `lm_head.weight` are the same tied tensor, written
  once per key). `base_config.json`: `config.to_dict()` (bert, t5).
- `inputs.safetensors`: as above. There is no `task_ids`.
- `outputs.safetensors`: `base_output` (base model alone, before wrapping), `peft_output` (PEFT model, eval mode,
  PEFT's own forward: `PeftModel` / `PeftModelForFeatureExtraction` / `PeftModelForSeq2SeqLM`), and
  - for IA3/LoRA/DoRA: `layer.<path>.input`, `layer.<path>.base_output` (wrapped layer alone on that input) and
    `layer.<path>.output` per adapted layer (`<path>` relative to the base model, e.g.
    `encoder.layer.0.attention.self.key`); T5 cases only for block 0 of encoder and decoder and without
    `base_output` (size);
  - for prefix tuning: no `layer.*` keys; instead `prefix.<i>.key` / `prefix.<i>.value` [batch, heads, P, head_dim]:
    what PEFT's `get_prompt` hands to attention layer `i` (BERT: encoder layer i; T5: decoder block i self-attention);
  - for `bias` != "none": `disabled_output` = the PEFT model under `disable_adapter()` (see "bias" below; it differs
    from `base_output`).
- `grads.safetensors`: `loss` = sum(peft_output^2) with shape [1]; `grad.<key>` for EVERY key of
  `adapter_model.safetensors` = d loss / d (that saved tensor), eval mode (dropout is 0 everywhere anyway); MLP cases
  also `grad.input.x`. Computed by reloading the adapter into a fresh base and letting exactly the saved tensors
  require grad; where the saved tensor is itself the trained parameter, the trained model's own gradient was
  checked to be the same.
- `prefix_proj_bert` only: `prompt_encoder.safetensors`: the trained model's prefix encoder (`embedding.weight`,
  `transform.0.weight/bias`, `transform.2.weight/bias`; not part of the saved adapter) and `grad.<key>` for each of
  them (same loss). `grads.safetensors` holds only the gradients of the saved tensors in every case.

Notes for the harness: there are no `task_ids`; prefix cases have no `layer.` intermediates (compare the
`prefix.*` keys instead); the bias cases (`has_disabled_output: true` in `cases.json`) must compare the
adapters-disabled output with `disabled_output`, not `base_output`.


## The computation in one page

Notation: an adapted `nn.Linear` has weight `W` [out, in] and bias `b` (or none); `x` [..., in]. All PEFT files named
below are in `peft/` 0.21.2, transformers files in `transformers/` 5.23.0.

Target matching (all methods with `target_modules` as a list, `tuners/tuners_utils.py`
`check_target_module_exists`): a module path (relative to the base model) is adapted when it equals a name or ends
with `"." + name`. A string is a regex that must match the whole path (`re.fullmatch`).

### (IA)^3 (`tuners/ia3/layer.py` `IA3Layer.update_layer`, `Linear.forward`, `Linear.merge`; `tuners/ia3/model.py`)

One vector per adapted layer, saved as `base_model.model.<path>.ia3_l`:

- feed-forward module: `ia3_l` has shape **[1, in]** and scales the layer's INPUT: `y = (x * l) W^T + b`.
- any other module: `ia3_l` has shape **[out, 1]** and scales the layer's OUTPUT, bias included:
  `y = (x W^T + b) * l` (l flattened to [out], broadcast over the last axis).

A module is feed-forward when its path ends with one of `feedforward_modules` (`IA3Model._check_target_module_feedforward`:
plain `str.endswith`, no "." boundary; a string is a `re.fullmatch`). `feedforward_modules` must be a subset of
`target_modules` (the config raises otherwise). Init: ones (`init_ia3_weights=True`), randn otherwise; these cases
hold 1 + 0.5 N(0,1). Merge: `W <- W * l` (feed-forward: `l` [1, in] scales columns, bias unchanged; other: `l`
[out, 1] scales rows and `b <- b * l`); unmerge divides (by `l + 1e-8`).

Defaults when `target_modules` / `feedforward_modules` are unset (`IA3Model._prepare_adapter_config`,
`utils/constants.py` `TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING` / `..._FEEDFORWARD_MODULES_MAPPING`):

- bert: targets `["key", "value", "output.dense"]`, feed-forward `["output.dense"]`. `"output.dense"` matches BOTH
  `encoder.layer.N.attention.output.dense` (16 -> 16) and `encoder.layer.N.output.dense` (32 -> 16), and both are
  feed-forward: per layer `attention.self.key` / `attention.self.value` get `ia3_l` [16, 1] (output scaling),
  `attention.output.dense` [1, 16] and `output.dense` [1, 32] (input scaling). `adapter_config.json` of `ia3_bert`
  records the resolved lists.
- t5: targets `["k", "v", "wo"]`, feed-forward `["wo"]`: `k` and `v` of the encoder self-attention, decoder
  self-attention and decoder cross-attention (`EncDecAttention.k/v`, which act on the encoder output) get [16, 1];
  every `DenseReluDense.wo` gets [1, 32] (input scaling, i.e. the activations after relu). (mt5 would be `k`, `v`,
  `wi_1` with no feed-forward module.)

### LoRA, rsLoRA, rank/alpha patterns, lora_bias (`tuners/lora/layer.py` `LoraLayer.update_layer`, `Linear.forward`, `Linear.get_delta_weight`, `Linear.merge`)

Saved: `<path>.lora_A.weight` [r, in], `<path>.lora_B.weight` [out, r], and with `lora_bias=True`
`<path>.lora_B.bias` [out]. Scaling `s = lora_alpha / r`, or `lora_alpha / sqrt(r)` with `use_rslora`.
`y = x W^T + b + s * ((x A^T) B^T + b_B)` (the `lora_B` bias is inside the scaled term). Merge: `W += s B A`,
and with `lora_bias` `b += s b_B` (fails if the base layer has no bias). `init_lora_weights=False` (used here) keeps
nn.Linear's kaiming-uniform init for A, B and b_B; the default (True) zeroes B and b_B.

`rank_pattern` / `alpha_pattern` (`tuners/lora/model.py` `LoraModel._create_and_replace` with
`utils/other.py` `get_pattern_key`): for an adapted module path, the keys of the pattern dict are tried in order
and the first key `p` with `re.match(r"(.*\.)?(p)$", path)` wins (so `"fc2"` matches `fc2` and `x.fc2` but not
`xfc2`; keys are regexes); no match -> the default `r` / `lora_alpha`. Each layer gets its own `r`, `alpha` and
scaling; saved shapes follow (`lora_patterns_mlp`: fc1 r 2, alpha 16, s 8; fc2 r 4, alpha 4, s 1). rsLoRA then uses
the per-layer alpha / sqrt(per-layer r).

### DoRA (`use_dora=True`; `tuners/lora/variants.py` `DoraLinearVariant`, `tuners/lora/dora.py` `DoraLinearLayer`)

Extra parameter per layer: magnitude `m` [out], saved as **`base_model.model.<path>.lora_magnitude_vector`** (in
the model it is `lora_magnitude_vector.<adapter>.weight`; `LoraModel._get_adapter_state_dict` drops the `.weight`).
Eval/training forward (`DoraLinearLayer.forward`; dropout 0):

    n   = || W + s * (B A) ||_2 per output row (torch.linalg.norm(..., dim=1) of the [out, in] matrix)   [out]
          computed from the current W, A, B at every forward, then DETACHED: no gradient flows through n
          (B A itself is detached inside the norm too)
    y   = (m / n) * (x W^T + s * (x A^T) B^T) + b

i.e. PEFT computes `base + (m/n - 1) * (x W^T) + (m/n) * s * lora(x)` where `base = x W^T + b`: the bias is NOT
rescaled. Gradients: dm = sum over tokens of g * (x W^T + s x A^T B^T) / n; dA, dB through the `s (x A^T) B^T` term
only, multiplied by m/n. Init: `m = n` at creation (so the output equals plain LoRA's); these cases perturb m by
(1 + 0.3 N(0,1)). Merge (`DoraLinearVariant.merge_safe/merge_unsafe`): `W <- (m / n)[:, None] * (W + s B A)` with n
from the unmerged W, bias unchanged. rsLoRA only changes `s`. `lora_bias=True` with DoRA is rejected by
`LoraConfig.__post_init__` ("The argument lora_bias=True is not supported for DoRA"), so there is no such case.

### bias = "none" / "all" / "lora_only" (`tuners/tuners_utils.py` `BaseTuner._mark_only_adapters_as_trainable`, `BaseTuner._get_learnable_bias_state_dict`)

- "none": only the adapter tensors are trainable and saved.
- "all": EVERY parameter of the whole model named `bias` or ending in `.bias` becomes trainable (not only those of
  adapted layers: in a transformer this includes LayerNorm and all other Linear biases), and every such state-dict
  entry is saved. For an adapted layer the bias lives in the wrapped layer: key
  `base_model.model.<path>.base_layer.bias`; a non-adapted layer keeps its own name: `base_model.model.<path>.bias`.
  `lora_bias_all_mlp` (LoRA on fc1 only) saves `fc1.base_layer.bias` and `fc2.bias` (plus A, B).
- "lora_only": only the biases of the adapted layers (`<path>.base_layer.bias`); `lora_bias_lora_only_mlp` saves
  `fc1.base_layer.bias` (plus A, B), fc2's bias stays frozen and unsaved.

Loading puts these biases into the base layers (replacing the base model's values); the forward is the ordinary
LoRA forward with the loaded bias. They are base parameters, so `disable_adapter()` does NOT restore the original
biases: with the adapter disabled the model is the base with the adapter's biases (`disabled_output`), not
`base_output`. Merging leaves them as they are. (A `lora_B` bias from `lora_bias=True` is a different thing: it is
part of the adapter, key `<path>.lora_B.bias`.)

### Prefix tuning (`tuners/prefix_tuning/model.py` `PrefixEncoder`; `peft_model.py` `PeftModel._setup_prompt_encoder`, `PeftModel.get_prompt`, `PeftModel.get_prompt_embedding_to_save`, `PeftModelForFeatureExtraction.forward`, `PeftModelForSeq2SeqLM.forward`)

Config values filled in from the model config (`utils/other.py` `_prepare_prompt_learning_config`): `num_layers` =
`num_hidden_layers` (for T5 that is `num_layers`, the ENCODER depth, even though only the decoder uses it),
`token_dim` = hidden size, `num_attention_heads`; `num_transformer_submodules` = 2 for `SEQ_2_SEQ_LM`, else 1;
`encoder_hidden_size` defaults to `token_dim`. P = `num_virtual_tokens`, L = `num_layers`, H = `token_dim`,
heads = `num_attention_heads`, hd = H / heads.

Saved: a single key **`prompt_embeddings`** [P, L*2*H] (no `base_model.model.` prefix). Without projection it is the
`nn.Embedding(P, L*2*H)` weight (init N(0,1); `init_weights="zero"` gives zeros). With `prefix_projection=True` the
trained model has `embedding` [P, H] and `transform` = Linear(H, encoder_hidden_size), tanh,
Linear(encoder_hidden_size, L*2*H), but `save_pretrained` writes only the projected result
`transform(embedding(arange(P)))` as `prompt_embeddings` [P, L*2*H]: the MLP is NOT in the adapter (so
`adapter_config.json` differs only by `prefix_projection: true` / `encoder_hidden_size`), a loaded adapter
(`inference_mode: true`) uses `prompt_embeddings` directly, and the MLP cannot be recovered from it
(`PrefixEncoder.load_prompt_embeddings` refuses). Its gradient in `grads.safetensors` is with respect to that saved
projected tensor; `prompt_encoder.safetensors` gives the MLP and its gradients for training checks.

Layout (`get_prompt`): the same rows for every batch element; row p viewed as [2L, heads, hd]; slice j covers
columns j*H ... (j+1)*H - 1, and within a slice column h*hd + d is head h, dimension d. Slice `2i` is a KEY prefix
and slice `2i+1` a VALUE prefix (key first); each is used as [heads, P, hd] (i.e. `pe.view(P, 2L, heads, hd)[:, j]`
transposed to heads-first). These are used as-is as attention keys/values (they do not pass through the key/value
projections; the 1/sqrt(hd) score scaling of BERT applies to them like to any key).

BERT (`PeftModelForFeatureExtraction.forward`; transformers `models/bert/modeling_bert.py`):
- `past_key_values = DynamicCache(...)` with layer i = (slice 2i, slice 2i+1); every encoder self-attention layer i
  (`BertSelfAttention.forward`, `cache.update`) attends over keys `cat([prefix_key_i, x W_k^T + b_k])` and values
  `cat([prefix_value_i, x W_v^T + b_v])` (prefix first, along the sequence).
- attention mask: PEFT prepends ones: `cat([ones(B, P), attention_mask], dim=1)`, so the P prefix positions are
  visible to every query (padding still hides padded tokens as keys); padded query rows still produce outputs.
- positions: `BertEmbeddings.forward` gets `past_key_values_length = P`, so position ids are **P ... P+T-1** (the
  absolute position embeddings are shifted by P).
- `token_type_ids` are DROPPED by PEFT (`PeftModel._adjust_prompt_learning_kwargs`: "Token type ids are not supported
  for parameter efficient tuning"): BERT then uses type 0 everywhere (its buffer, gathered at positions P..). The
  inputs still hold `token_type_ids` and `base_output` uses them; `peft_output` does not.
- (a `position_ids` argument, if given, would be offset by P; none is given here.)

T5 (`PeftModelForSeq2SeqLM.forward`; transformers `models/t5/modeling_t5.py`, `cache_utils.py` `EncoderDecoderCache.__init__`):
- `get_prompt` views the prompt as [B, P, 2L, heads, hd], CONCATENATES it with itself along the 2L axis (-> 4L slices
  s'_k = s_(k mod 2L)), and splits it into L groups of 4 consecutive slices; group i = (s'_4i, s'_4i+1, s'_4i+2,
  s'_4i+3). `EncoderDecoderCache(groups)` takes the first two of each group as the self-attention cache of decoder
  block i and the last two as its cross-attention cache; PEFT then REPLACES the cross-attention cache with an empty
  `DynamicCache` and marks it not updated. Net effect: decoder block i self-attention key prefix = slice
  `(4i) mod 2L`, value prefix = slice `(4i + 1) mod 2L`. With L = 2 (here) both decoder blocks use slices 0 (key) and
  1 (value); slices 2 and 3 (columns 32..63) are unused and their gradient is exactly zero. (L = 1: slices 0, 1;
  L = 3: blocks use (0,1), (4,5), (2,3).) This is what PEFT 0.21.2 computes, not what the layout suggests.
- the ENCODER gets no prefix (`T5Stack.forward` drops `past_key_values` for the encoder) and its attention mask is
  not extended; cross-attention gets no prefix (its cache was emptied) and uses the plain encoder mask.
- decoder self-attention of block i: keys `cat([prefix_key, y W_k^T])`, values likewise; no 1/sqrt(d) scaling (T5).
  Mask (`create_causal_mask` with a cache of length P, no `decoder_attention_mask` given): the query at decoder
  step t sits at position P + t and sees key positions 0 ... P + t, i.e. all P prefix positions and the causal past.
  (If a `decoder_attention_mask` were passed, PEFT prepends ones(B, P) to it.)
- relative position bias (`T5Attention.compute_bias(query_length=Td, key_length=P+Td, past_seen_tokens=P)`, block 0,
  shared by all decoder blocks): query positions P ... P+Td-1, key positions 0 ... P+Td-1 (prefix at 0 ... P-1);
  relative = key_pos - query_pos; decoder buckets are unidirectional: n = max(query_pos - key_pos, 0), bucket n if
  n < num_buckets/2, else num_buckets/2 + floor(log(n / (num_buckets/2)) / log(max_distance / (num_buckets/2)) *
  (num_buckets/2)) capped at num_buckets - 1 (log in float32). So prefix key j seen from step t has distance
  P + t - j.
- `prefix.<i>.key/value` in `outputs.safetensors` are the decoder self-attention prefixes of block i.

The gradient of `prompt_embeddings` is the sum over the batch of the gradients of the prefix keys/values, scattered
back to the slices above.

### BEFT (`tuners/beft/layer.py` `BeftLayer.update_layer`, `Linear.forward`, `Linear.merge`)

Saved: `<path>.beft_bias` [1, out] per targeted Linear (init 0; `init_weights=False` gives N(0,1)); here 0.5 N(0,1).
`y = x W^T + b + beft_bias` (broadcast over rows). Merge: `b += beft_bias`; a base without a bias cannot merge (T5's
linears have none: `beft_t5` is not merged). Default targets: BERT `value`, T5 `v`. PEFT's BEFT config has no
`exclude_modules` key.

### LN tuning (`tuners/ln_tuning/layer.py` `LNTuningLayer`)

The targeted norm is kept as `base_layer` and a deep copy is trained as `ln_tuning_layers`; the forward runs the copy.
Saved: `<path>.ln_tuning_layers.weight` (and `.bias` for LayerNorm) [H]; here the copies were moved by 0.3 N(0,1).
BERT: `LayerNorm(x) = (x - mean) / sqrt(var + eps) * weight + bias` with the copy's weight and bias; T5:
`x * rsqrt(mean(x^2) + eps) * weight`. Merge swaps the copy in as the base layer. Default targets: T5 `layer_norm`,
`final_layer_norm`; BERT has none (the case names `LayerNorm`). `layer.<path>.*` records are the norms' inputs and
outputs.

### Prompt tuning and P-tuning (`tuners/prompt_tuning/model.py` `PromptEmbedding`, `tuners/p_tuning/model.py` `PromptEncoder`; `peft_model.py` `get_prompt`, `PeftModelForFeatureExtraction.forward`, `PeftModelForSeq2SeqLM.forward`)

Saved: a single key **`prompt_embeddings`** [n P, H], n = `num_transformer_submodules` (2 for SEQ_2_SEQ_LM). Prompt
tuning: the `nn.Embedding` weight (RANDOM init N(0,1)). P-tuning: the MLP head's output `mlp_head(embedding(arange(n
P)))` with `mlp_head` = Linear(H, E), ReLU, Linear(E, E), ReLU, Linear(E, H); the encoder and its gradients are in
`prompt_encoder.safetensors`.
- BERT (FEATURE_EXTRACTION): `inputs_embeds = cat(prompt_embeddings[:P] (same rows for every sample),
  word_embeddings(input_ids))`: the output has P + T positions, position ids 0 ... P+T-1, attention mask
  `cat(ones(B, P), mask)`, token types dropped (type 0 everywhere).
- T5 (SEQ_2_SEQ_LM): the first P rows are prepended to the ENCODER input embeddings and the encoder mask is extended
  with ones (relative positions over P + Ts); the decoder is unchanged. Rows P ... 2P-1 are never read: zero gradient.
"""


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
