#!/usr/bin/env python3
"""An adapter trained on text by `polyctl train` loads in PyTorch + PEFT (issue 20): `PeftModel.from_pretrained` on
the same transformers BERT classifier gives the logits `polyctl infer --logits` prints.

    pip install torch peft transformers tokenizers safetensors
    swift build -c release --product polyctl
    python3 Benchmarks/text_roundtrip.py                        # the built-in text tasks and their tiny BERT
    python3 Benchmarks/text_roundtrip.py --model DIR --data F   # a BERT folder and a JSONL file of task/text/label

For each method (Poly and MHR with parameter mixing, as PEFT computes them; LoRA; IA3; per-task heads), polyctl
trains a short run; PEFT then loads the run folder onto `BertForSequenceClassification.from_pretrained(base,
num_labels=...)` (the built-in base is the run's `base_model/` folder), tokenizes the same texts with the `tokenizers`
library and the base's `tokenizer.json`, and routes each text by its task (`task_ids`). Tolerance: logits within 1e-4
of the largest magnitude. Exits 1 on any difference beyond it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = [
    ("poly", ["--method", "poly", "--mixing", "parameters"]),
    ("mhr", ["--method", "mhr", "--mixing", "parameters", "--splits", "2"]),
    ("lora", ["--method", "lora"]),
    ("ia3", ["--method", "ia3"]),
    ("poly-per-task-heads", ["--method", "poly", "--mixing", "parameters", "--heads", "per-task"]),
]

BUILT_IN_TEXTS = [("the red fox", "first"), ("rain and a cat of the snow", "last"), ("a fig", "second"),
                  ("gold dog owl plum and the sun", "majority"), ("red green blue", "absent"), ("hail", "first")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="BERT folder (default: the built-in text tasks)")
    ap.add_argument("--data", help="JSONL task/text/label file (with --model)")
    ap.add_argument("--polyctl", default=os.path.join(ROOT, ".build", "release", "polyctl"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    if bool(args.model) != bool(args.data):
        sys.exit("--model and --data go together")

    import torch
    from peft import PeftModel
    from tokenizers import Tokenizer
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()   # the fresh head's "newly initialized" report: the adapter brings the trained one
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="text-roundtrip-")
    if args.data:
        rows = [json.loads(line) for line in open(args.data, encoding="utf-8") if line.strip()]
        texts = [(r["text"], str(r["task"])) for r in rows[:8]]
    else:
        texts = BUILT_IN_TEXTS
    inputs = os.path.join(work, "texts.jsonl")
    with open(inputs, "w", encoding="utf-8") as f:
        for text, task in texts:
            f.write(json.dumps({"text": text, "task": task}) + "\n")

    worst = 0.0
    failed = False
    for name, options in CASES:
        run = os.path.join(work, name)
        source = ["--model", args.model, "--data", args.data] if args.model else ["--text"]
        subprocess.run([args.polyctl, "train", *source, *options, "--steps", str(args.steps), "--eval-every", "0",
                        "--no-baseline", "--quiet", "--output", run], check=True, stdout=subprocess.DEVNULL)
        printed = subprocess.run([args.polyctl, "infer", "--adapter", run, "--input", inputs, "--logits"], check=True,
                                 capture_output=True, text=True).stdout.splitlines()
        ours = [json.loads(line)["logits"] for line in printed]

        spec = json.load(open(os.path.join(run, "polypeft_run.json")))
        text_spec = spec["text"]
        heads = text_spec.get("heads")
        outputs = sum(len(h) for h in heads["labels"]) if heads else len(text_spec["labelNames"])
        base_dir = text_spec.get("modelPath") or os.path.join(run, "base_model")
        base = BertForSequenceClassification.from_pretrained(base_dir, num_labels=outputs)
        model = PeftModel.from_pretrained(base, run).eval()
        tok = Tokenizer.from_file(os.path.join(base_dir, "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(text_spec["maxLength"])
        tasks = spec["taskNames"]
        offsets = [0]
        for labels in (heads["labels"] if heads else []):
            offsets.append(offsets[-1] + len(labels))
        for (text, task), mine in zip(texts, ours):
            enc = tok.encode(text)
            kwargs = {"input_ids": torch.tensor([enc.ids]), "attention_mask": torch.tensor([enc.attention_mask]),
                      "token_type_ids": torch.tensor([enc.type_ids])}
            if spec["method"] in ("poly", "mhr"):
                kwargs["task_ids"] = torch.tensor([tasks.index(task)])
            with torch.no_grad():
                logits = model(**kwargs).logits[0]
            if heads:
                t = tasks.index(task)
                logits = logits[offsets[t]:offsets[t + 1]]
            theirs = torch.tensor(mine)
            scale = max(float(logits.abs().max()), float(theirs.abs().max()), 1e-12)
            diff = float((logits - theirs).abs().max()) / scale
            worst = max(worst, diff)
            if diff > args.tolerance:
                failed = True
                print(f"{name}: '{text}' ({task}): PEFT {logits.tolist()} vs polyctl {mine} (rel. diff {diff:.2e})")
        print(f"{name:22s} {len(texts)} texts  max rel. diff {worst:.2e}")
    print("FAILED" if failed else f"OK: every run folder loads with PeftModel.from_pretrained; worst rel. diff {worst:.2e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
