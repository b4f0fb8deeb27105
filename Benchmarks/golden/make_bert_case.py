#!/usr/bin/env python3
"""Writes a golden case for the conformance suite from the real Hugging Face stack: a tiny BertModel (transformers)
with PEFT's Poly (MHR) tuner on `query` and `value`, in the same format as the shared golden set (see that set's
README): base_config.json, base_model.safetensors, adapter/ (save_pretrained), inputs, eval outputs with per-layer
intermediates, and gradients of sum(output^2).

    python3 Benchmarks/golden/make_bert_case.py OUT_DIR     # e.g. Tests/PolyPEFTTests/Resources/golden/bert_mhr_k4_s2_r2

Needs torch, transformers and peft. Deterministic (seed 0, one thread).
"""
import json
import os
import sys

import torch
import peft
import transformers
from peft import PolyConfig, get_peft_model
from safetensors.torch import save_file
from transformers import BertConfig, BertModel


def main(out):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
                        max_position_embeddings=32, type_vocab_size=2, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, attn_implementation="eager")
    base = BertModel(config, add_pooling_layer=True).eval()
    # LayerNorms start as the identity affine map, which makes sum(output^2) nearly constant (zero gradients):
    # give them random affine parameters.
    with torch.no_grad():
        for name, p in base.named_parameters():
            if "LayerNorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.5 * torch.randn_like(p))
    with open(os.path.join(out, "base_config.json"), "w") as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)
        f.write("\n")
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, os.path.join(out, "base_model.safetensors"))
    with torch.no_grad():
        input_ids = torch.randint(1, 50, (3, 6))
        attention_mask = torch.ones(3, 6, dtype=torch.long)
        attention_mask[1, 4:] = 0
        token_type_ids = torch.zeros(3, 6, dtype=torch.long)
        token_type_ids[:, 3:] = 1
        task_ids = torch.tensor([2, 0, 2])
        base_output = base(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
    pc = PolyConfig(r=2, n_tasks=3, n_skills=4, n_splits=2, target_modules=["query", "value"], init_weights=False)
    model = get_peft_model(base, pc)
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "module_logits" in name:
            with torch.no_grad():
                p.copy_(torch.randn_like(p) * 2)
    model.eval()
    model.save_pretrained(os.path.join(out, "adapter"))
    readme = os.path.join(out, "adapter", "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    save_file({"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
               "task_ids": task_ids}, os.path.join(out, "inputs.safetensors"))

    records = {}
    def hook(path):
        def fn(module, args, kwargs, output):
            x = args[0]
            with torch.no_grad():
                records[f"layer.{path}.input"] = x.detach().clone()
                records[f"layer.{path}.base_output"] = module.base_layer(x).detach().clone()
                records[f"layer.{path}.output"] = output.detach().clone()
                records[f"layer.{path}.mixing_weights"] = module.poly_router["default"](task_ids=task_ids, input_ids=x).detach().clone()
        return fn
    handles = []
    for name, module in model.base_model.model.named_modules():
        if isinstance(module, peft.tuners.poly.layer.Linear):
            handles.append(module.register_forward_hook(hook(name), with_kwargs=True))
    out_t = model.base_model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             task_ids=task_ids).last_hidden_state
    for h in handles:
        h.remove()
    loss = (out_t ** 2).sum()
    model.zero_grad()
    loss.backward()
    grads = {"loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = name.replace(".default", "")
            grads["grad." + key] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    outputs = {"peft_output": out_t.detach(), "base_output": base_output}
    outputs.update(records)
    save_file(outputs, os.path.join(out, "outputs.safetensors"))
    save_file(grads, os.path.join(out, "grads.safetensors"))
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(f"""# Golden case `{os.path.basename(out.rstrip('/'))}` (PolyPEFT's own, from the real PEFT stack)

Written by `Benchmarks/golden/make_bert_case.py` with torch {torch.__version__}, transformers
{transformers.__version__}, peft {peft.__version__}, CPU, one thread, seed 0. Same file format as the shared golden
set (see `../README.md`): a tiny `BertModel` (hidden 16, 2 layers, 4 heads, vocab 50, pooler, eager attention,
dropout 0, LayerNorm weights 1 + 0.5 N(0,1) and biases 0.5 N(0,1) so that sum(output^2) is not constant) from
`base_config.json`; PEFT `PolyConfig(r=2, n_tasks=3, n_skills=4, n_splits=2,
target_modules=["query", "value"], init_weights=False)` with router logits overwritten by N(0,1)*2 (seed 1).
Inputs have token types and a padded row. `peft_output` / `base_output` are `last_hidden_state` [3, 6, 16] of
`peft_model.base_model(..., task_ids=...)` and of the base model. `outputs.safetensors` also holds, per Poly layer,
`input`, `base_output`, `output` and the eval-mode `mixing_weights` (forward hooks). `grads.safetensors`: gradients
of sum(output^2) for every adapter tensor (PEFT's saved keys, with `grad.` in front) and `loss`.
""")
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1])
