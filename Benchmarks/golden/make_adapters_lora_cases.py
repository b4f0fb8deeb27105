#!/usr/bin/env python3
"""Writes golden cases for the `adapters` library's (AdapterHub) LoRA and (IA)^3 (`LoRAConfig`, `IA3Config`,
`architecture` "lora"), with and without their gates, and for a union of a gated LoRA with a gated bottleneck adapter,
on the tiny BertModel and T5ForConditionalGeneration of `make_bottleneck_cases.py` (same bases and inputs): the adapter
exactly as `save_adapter` writes it, every trainable adapter parameter, eval-mode outputs, the base output, the gating
scores and the gradients of sum(output^2) with respect to every trainable adapter parameter.

    /work/venv-adapters/bin/python Benchmarks/golden/make_adapters_lora_cases.py OUT_DIR
    # e.g. OUT_DIR = Tests/PolyPEFTTests/Resources/golden_adapters_lora

Same venv, versions and determinism as make_bottleneck_cases.py (adapters 1.3.0, transformers 4.57.6; it re-executes
itself with PYTHONHASHSEED=0 and HF_HUB_OFFLINE=1; two runs give byte-identical folders). Checks, enforced: every
LoRA module's output recomputed in float64 from its recorded input, the base weights and the adapter parameters by
the formulas of OUT_DIR/README.md, and every gate likewise; the gating scores the library returns equal those gates
column-stacked in call order; the model rerun in float64 agrees; the output differs from the base and every gradient
is non-zero; `adapter/` reloads into a fresh base and reproduces the output.
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

import torch
import torch.nn.functional as F
import adapters
import safetensors
import transformers
from adapters import ConfigUnion, IA3Config, LoRAConfig, SeqBnConfig
from adapters.methods.lora import LoRALinear
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_bottleneck_cases as bn  # noqa: E402  (bases, inputs, forward, perturbation, folder saving)

ADAPTER = bn.ADAPTER
REF_TOL, F64_TOL, RELOAD_TOL, MIN_EFFECT = bn.REF_TOL, bn.F64_TOL, bn.RELOAD_TOL, bn.MIN_EFFECT

CASES = [
    dict(name="lora_bert", kind="bert", seed=31,
         config=lambda: LoRAConfig(r=4, alpha=8),
         notes="LoRAConfig(r=4, alpha=8): query and value of every layer, scaling alpha / r = 2."),
    dict(name="lora_options_bert", kind="bert", seed=32,
         config=lambda: LoRAConfig(r=2, alpha=2, attn_matrices=["q", "k", "v"], intermediate_lora=True,
                                   output_lora=True, leave_out=[1], use_gating=True, init_weights="bert"),
         notes="LoRA on q, k, v, intermediate and output of layer 0 only (leave_out [1]), gated (the gate replaces "
               "the scaling), bert init."),
    dict(name="lora_gated_t5", kind="t5", seed=33,
         config=lambda: LoRAConfig(r=2, alpha=4, output_lora=True, use_gating=True),
         notes="Gated LoRA on T5: q and v of every self- and cross-attention (the library wraps every T5Attention "
               "under 'selfattn'; a decoder block's cross-attention gates stack after its self-attention's) and "
               "every wo; layers numbered encoder first."),
    dict(name="ia3_bert", kind="bert", seed=34,
         config=lambda: IA3Config(),
         notes="IA3Config: the outputs of key, value and intermediate.dense scaled by lora_B [out, 1] (alpha 1)."),
    dict(name="ia3_gated_t5", kind="t5", seed=35,
         config=lambda: IA3Config(use_gating=True, output_lora=True),
         notes="Gated (IA)^3 on T5: k, v, wi and wo scaled by lora_B times the gate."),
    dict(name="union_lora_bn_bert", kind="bert", seed=36,
         config=lambda: ConfigUnion(LoRAConfig(r=2, alpha=2, use_gating=True),
                                    SeqBnConfig(reduction_factor=4, use_gating=True)),
         notes="ConfigUnion of a gated LoRA (q, v) and a gated Pfeiffer bottleneck adapter (bottleneck 4): UniPELT "
               "without its prefix; gating scores of both methods."),
]


def lora_modules(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear) and ADAPTER in m.loras]


def lora_part(cfg):
    """The LoRA part of a saved config dict (the config itself, or the union's part with architecture "lora")."""
    if cfg.get("architecture") == "union":
        return next(p for p in cfg["configs"] if p.get("architecture") == "lora")
    return cfg


def reference_module(P, path, cfg, x, W, b):
    """Float64 output of one wrapped linear layer and its gate [B] (or None), from the formulas of the README."""
    a = f"{path}.loras.{ADAPTER}."
    y = F.linear(x, W, b)
    gate = None
    if cfg["use_gating"]:
        gate = torch.sigmoid(F.linear(x, P[a + "gate.weight"], P[a + "gate.bias"])).mean(dim=1, keepdim=True)  # [B,1,1]
    if cfg["composition_mode"] == "scale":
        s = P[a + "lora_B"].reshape(1, 1, -1) * (gate if gate is not None else cfg["alpha"])
        return y * s, gate
    d = x @ P[a + "lora_A"].t() @ P[a + "lora_B"].t()
    return y + d * (gate if gate is not None else cfg["alpha"] / cfg["r"]), gate


def run_case(case, out_root):
    name, kind = case["name"], case["kind"]
    d, config, inputs, base_state, base_output, model, _ = bn.start_case(case, out_root)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    params = {n: p.detach().clone().contiguous() for n, p in trainable.items()}

    adapter_dir = os.path.join(d, "adapter")
    bn.save_adapter_folder(model, kind, adapter_dir)
    saved = load_file(os.path.join(adapter_dir, "adapter.safetensors"))
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)["config"]
    assert set(saved) == set(params), sorted(set(saved) ^ set(params))
    for k, v in saved.items():
        assert torch.equal(v, params[k]), k

    # Record every LoRA module's input and output, in call order.
    modules = lora_modules(model)
    calls = []

    def hook(path):
        def f(module, args, out):
            calls.append((path, args[0].detach().clone(), out.detach().clone()))
        return f
    handles = [m.register_forward_hook(hook(p)) for p, m in modules]
    model.zero_grad()
    part = lora_part(cfg)
    use_gating = part["use_gating"] or any(c.get("use_gating") for c in cfg.get("configs", []))
    out, output = bn.forward(model, kind, inputs, **({"output_adapter_gating_scores": True} if use_gating else {}))
    for h in handles:
        h.remove()
    assert len(calls) == len(modules), (len(calls), len(modules))
    loss = (output ** 2).sum()
    loss.backward()
    effect = bn.rel_diff(output, base_output)
    assert effect > MIN_EFFECT, (name, effect)

    P = {k: v.double() for k, v in params.items()}
    by_path = dict(modules)
    worst = 0.0
    expected_scores = {}
    for path, x, y in calls:
        m = by_path[path]
        W = m.weight.detach().double()
        b = m.bias.detach().double() if m.bias is not None else None
        ref, gate = reference_module(P, path, part, x.double(), W, b)
        worst = max(worst, bn.rel_diff(y, ref))
        if gate is not None:
            key = f"gate.{m.layer_idx}.{m.location_key}"
            col = gate.reshape(-1)
            expected_scores[key] = col if key not in expected_scores else torch.column_stack((expected_scores[key], col))
    assert worst < REF_TOL, (name, "module reference", worst)

    gates = {}
    if use_gating:
        scores = out["adapter_gating_scores"][ADAPTER]
        for layer in sorted(scores):
            for loc in sorted(scores[layer]):
                key = f"gate.{layer}.{loc}"
                if loc.endswith("_lora"):
                    if not part["use_gating"]:
                        continue
                    got = torch.from_numpy(scores[layer][loc].copy())
                    assert bn.rel_diff(got, expected_scores[key]) < REF_TOL, (name, key)
                    gates[key] = got
                else:
                    # a bottleneck part of a union: checked against its own reference in make_bottleneck_cases.py;
                    # here only stored (gated parts only).
                    bpart = next(c for c in cfg["configs"] if c.get("architecture") is None)
                    if bpart["use_gating"]:
                        gates[key] = torch.from_numpy(scores[layer][loc].copy())
        assert set(k for k in gates if k.endswith("_lora")) == set(expected_scores), (sorted(gates), sorted(expected_scores))

    grads = {"loss": loss.detach().reshape(1)}
    for n, p in trainable.items():
        assert p.grad is not None and float(p.grad.abs().max()) > 0, (name, "zero gradient", n)
        grads["grad." + n] = p.grad.detach().clone()

    m64 = copy.deepcopy(model).double()
    m64.zero_grad()
    _, out64 = bn.forward(m64, kind, inputs)
    (out64 ** 2).sum().backward()
    p64 = dict(m64.named_parameters())
    f64_out = bn.rel_diff(output, out64)
    f64_grad = max(bn.rel_diff(grads["grad." + n], p64[n].grad) for n in trainable)
    assert f64_out < F64_TOL and f64_grad < F64_TOL, (name, f64_out, f64_grad)

    reloaded = bn.fresh_base(kind, config, base_state)
    adapters.init(reloaded)
    kwargs = {"with_head": False} if kind == "t5" else {}
    reloaded.load_adapter(adapter_dir, use_safetensors=True, set_active=True, **kwargs)
    reloaded.eval()
    with torch.no_grad():
        _, out_r = bn.forward(reloaded, kind, inputs)
    reload_diff = bn.rel_diff(out_r, output)
    assert reload_diff < RELOAD_TOL, (name, reload_diff)

    outputs = {"base_output": base_output, "output": output.detach().clone()}
    outputs.update(gates)
    save_file(params, os.path.join(d, "adapter_parameters.safetensors"))
    save_file(outputs, os.path.join(d, "outputs.safetensors"))
    save_file(grads, os.path.join(d, "grads.safetensors"))
    checks = {"output_vs_base_rel_diff": effect, "module_reference_rel_diff_max": worst,
              "float64_library_output_rel_diff": f64_out, "float64_library_grad_rel_diff_max": f64_grad,
              "reload_rel_diff": reload_diff}
    entry = {
        "name": name, "model_kind": kind, "notes": case["notes"], "config": cfg,
        "modules": [{"path": p, "layer_idx": m.layer_idx, "location_key": m.location_key} for p, m in modules],
        "parameter_keys": {k: list(v.shape) for k, v in sorted(params.items())},
        "gate_keys": sorted(gates), "checks": checks,
    }
    size = sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(d) for fn in fs)
    print(f"{name}: {size / 1024:.1f} KB, {len(modules)} modules, checks {json.dumps(checks)}")
    return entry


README = """# Golden vectors for the adapters library's LoRA and (IA)^3 (AdapterHub `adapters`)

Reference results of the `adapters` library for its `LoRAConfig` and `IA3Config` (`architecture` "lora"), gated and
not, and a union of a gated LoRA with a gated bottleneck adapter, on the tiny models of `golden_bottleneck/` (the same
base weights and inputs). One sub-folder per case, in the format of `golden_bottleneck/` without slot records
(`adapter/` as `save_adapter(..., use_safetensors=True)` writes it, `adapter_parameters.safetensors`,
`base_config.json`, `base_model.safetensors`, `inputs.safetensors`, `outputs.safetensors` with `output`,
`base_output` and the gating scores `gate.<layer>.<location key>`, `grads.safetensors` with `loss` and
`grad.<parameter>`); `cases.json` is the index.

## Provenance

- {{VERSIONS}}; CPU, one thread, `torch.use_deterministic_algorithms(True)`.
- Written by `Benchmarks/golden/make_adapters_lora_cases.py` in the `adapters` venv (see `Benchmarks/golden/README.md`):

      /work/venv-adapters/bin/python Benchmarks/golden/make_adapters_lora_cases.py Tests/PolyPEFTTests/Resources/golden_adapters_lora

  Rerunning gives byte-identical folders.
- Checks, enforced by the script (numbers in `cases.json`): every wrapped module's output recomputed in float64 from
  its recorded input by the formulas below (< 2e-5 of the largest magnitude); the returned gating scores equal the
  recomputed gates, column-stacked in call order; the model in float64 agrees (< 2e-5); the output differs from the
  base and every gradient is non-zero; `adapter/` reloads into a fresh base and reproduces `output` (< 1e-6).

## The maths (adapters 1.3.0, `methods/lora.py`)

For a wrapped linear layer with input `x` [B, T, in] and base output `y = x W^T + b`:

    add (LoRA):     out = y + (x A^T B^T) * s            lora_A [r, in], lora_B [out, r]
    scale ((IA)^3): out = y * (lora_B^T * s)             lora_B [out, 1] (no lora_A; the bias is scaled too)
    s = mean_t sigmoid(x gate.weight^T + gate.bias)      [B, 1, 1] with use_gating (gate: Linear(in, 1))
      = alpha / r (add), alpha (scale)                   otherwise

Placement: BERT `attention.self.{query,key,value}` by `attn_matrices` (location `selfattn`), `intermediate.dense`
(`intermediate`), the layer's `output.dense` (`output`); T5 every `T5Attention`'s `{q,k,v}` (self- and
cross-attention alike, location `selfattn`), `DenseReluDense.wi` (`intermediate`), `DenseReluDense.wo` (`output`).
Layers are numbered encoder first, then decoder. Weight keys: `<module>.loras.<name>.{lora_A,lora_B,gate.weight,
gate.bias}`. Gating scores: `{name: {layer: {"<location>_lora": array}}}`, each module's gate `[B]` appended as a
column in call order (`np.column_stack`), so a layer's `selfattn_lora` holds one column per wrapped attention
projection (in a T5 decoder block: self-attention's, then cross-attention's).

## Cases

| case | model | modules | what |
| --- | --- | --- | --- |
{{ROWS}}
"""


def main(out_root):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out_root, exist_ok=True)
    entries = [run_case(c, out_root) for c in CASES]
    versions = {"adapters": adapters.__version__, "transformers": transformers.__version__,
                "torch": torch.__version__, "safetensors": safetensors.__version__,
                "python": platform.python_version()}
    with open(os.path.join(out_root, "cases.json"), "w") as f:
        f.write(bn.compact_json({"versions": versions, "adapter_name": ADAPTER, "cases": entries}) + "\n")
    rows = "\n".join(f"| `{e['name']}` | {e['model_kind']} | {len(e['modules'])} | {e['notes']} |" for e in entries)
    text = README.replace("{{VERSIONS}}", ", ".join(f"{k} {v}" for k, v in versions.items())).replace("{{ROWS}}", rows)
    with open(os.path.join(out_root, "README.md"), "w") as f:
        f.write(text)
    total = sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(out_root) for fn in fs)
    print(f"wrote {out_root} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
