#!/usr/bin/env python3
"""An adapter trained on text by `polyctl train` loads in PyTorch + PEFT (issue 20): `PeftModel.from_pretrained` on
the same transformers BERT classifier gives the logits `polyctl infer --logits` prints.

    pip install torch peft transformers tokenizers safetensors
    swift build -c release --product polyctl
    python3 Benchmarks/text_roundtrip.py                        # the built-in text tasks and their tiny BERT
    python3 Benchmarks/text_roundtrip.py --model DIR --data F   # a BERT folder and a JSONL file of task/text/label
    python3 Benchmarks/text_roundtrip.py --text-to-text         # the built-in text-to-text tasks and their tiny T5

For each method (Poly and MHR with parameter mixing, as PEFT computes them; LoRA; IA3; per-task heads), polyctl
trains a short run; PEFT then loads the run folder onto `BertForSequenceClassification.from_pretrained(base,
num_labels=...)` (the built-in base is the run's `base_model/` folder), tokenizes the same texts with the `tokenizers`
library and the base's `tokenizer.json`, and routes each text by its task (`task_ids`). Tolerance: logits within 1e-4
of the largest magnitude, and sentence embeddings (`infer --embeddings`: the adapted encoder's last hidden state,
mean-pooled and normalised) within 1e-4. Text-to-text runs (T5, `SEQ_2_SEQ_LM`) compare PEFT's greedy `generate` with
`polyctl infer` (identical text) and PEFT's cross-entropy on the test texts with `polyctl eval --data` (within 1e-4
relative). Exits 1 on any difference beyond the tolerance.
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

T2T_CASES = [
    ("poly", ["--method", "poly", "--mixing", "parameters"]),
    ("mhr", ["--method", "mhr", "--mixing", "parameters", "--splits", "2"]),
    ("lora", ["--method", "lora"]),
    ("ia3", ["--method", "ia3"]),
]

BUILT_IN_T2T = [("the red fox and rain", "rain fox red", "reverse"), ("the red fox and rain", "color animal weather", "categories"),
                ("gold owl", "gold", "colors"), ("a fig and hail", "fig", "first"), ("snow of egg", "snow egg", "copy"),
                ("pink gray blue", "pink gray blue", "colors")]

BUILT_IN_TEXTS = [("the red fox", "first"), ("rain and a cat of the snow", "last"), ("a fig", "second"),
                  ("gold dog owl plum and the sun", "majority"), ("red green blue", "absent"), ("hail", "first")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="BERT folder (default: the built-in text tasks)")
    ap.add_argument("--data", help="JSONL task/text/label file (with --model)")
    ap.add_argument("--polyctl", default=os.path.join(ROOT, ".build", "release", "polyctl"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--text-to-text", action="store_true", help="the built-in text-to-text tasks (T5)")
    args = ap.parse_args()
    if args.text_to_text:
        sys.exit(text_to_text(args))
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

        def inputs_of(text, task):
            """The model's keyword arguments for one text, routed by its task."""
            enc = tok.encode(text)
            kwargs = {"input_ids": torch.tensor([enc.ids]), "attention_mask": torch.tensor([enc.attention_mask]),
                      "token_type_ids": torch.tensor([enc.type_ids])}
            if spec["method"] in ("poly", "mhr"):
                kwargs["task_ids"] = torch.tensor([tasks.index(task)])
            return kwargs

        for (text, task), mine in zip(texts, ours):
            kwargs = inputs_of(text, task)
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
        # Sentence embeddings (`infer --embeddings`): the adapted encoder's last hidden state, mean-pooled over the
        # mask and L2-normalised, as sentence-transformers computes them.
        if heads is None:
            embedded = subprocess.run([args.polyctl, "infer", "--adapter", run, "--input", inputs, "--embeddings"], check=True,
                                      capture_output=True, text=True).stdout.splitlines()
            for (text, task), line in zip(texts, embedded):
                kwargs = inputs_of(text, task)
                with torch.no_grad():
                    hidden = model(**kwargs, output_hidden_states=True).hidden_states[-1][0]
                mask = kwargs["attention_mask"][0].unsqueeze(-1).float()
                mean = (hidden * mask).sum(0) / mask.sum().clamp(min=1e-9)
                expected = torch.nn.functional.normalize(mean, dim=0)
                diff = float((expected - torch.tensor(json.loads(line)["embedding"])).abs().max())
                worst = max(worst, diff)
                if diff > args.tolerance:
                    failed = True
                    print(f"{name}: embedding of '{text}' ({task}) differs by {diff:.2e}")
        print(f"{name:22s} {len(texts)} texts  max rel. diff {worst:.2e}")
    print("FAILED" if failed else f"OK: every run folder loads with PeftModel.from_pretrained; worst rel. diff {worst:.2e}")
    sys.exit(1 if failed else 0)


def text_to_text(args):
    import torch
    from peft import PeftModel
    from tokenizers import Tokenizer
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="t2t-roundtrip-")
    data = os.path.join(work, "data.jsonl")
    with open(data, "w", encoding="utf-8") as f:
        for source, target, task in BUILT_IN_T2T:
            f.write(json.dumps({"task": task, "source": source, "target": target}) + "\n")
    failed = False
    for name, options in T2T_CASES:
        run = os.path.join(work, name)
        subprocess.run([args.polyctl, "train", "--text-to-text", *options, "--steps", str(args.steps), "--eval-every", "0",
                        "--no-baseline", "--quiet", "--output", run], check=True, stdout=subprocess.DEVNULL)
        ours = [json.loads(line)["generation"] for line in subprocess.run(
            [args.polyctl, "infer", "--adapter", run, "--input", data, "--max-new-tokens", "16"], check=True,
            capture_output=True, text=True).stdout.splitlines()]
        our_ce = json.loads(subprocess.run([args.polyctl, "eval", "--adapter", run, "--data", data, "--json"], check=True,
                                           capture_output=True, text=True).stdout)["cross_entropy"]
        spec = json.load(open(os.path.join(run, "polypeft_run.json")))
        base_dir = os.path.join(run, "base_model")
        model = PeftModel.from_pretrained(T5ForConditionalGeneration.from_pretrained(base_dir), run).eval()
        tok = Tokenizer.from_file(os.path.join(base_dir, "tokenizer.json"))
        tasks = spec["taskNames"]
        losses, same = [], 0
        for (source, target, task), mine in zip(BUILT_IN_T2T, ours):
            ids = torch.tensor([tok.encode(source).ids])
            kwargs = {"task_ids": torch.tensor([tasks.index(task)])} if spec["method"] in ("poly", "mhr") else {}
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                                     num_beams=1, **kwargs)
                labels = torch.tensor([tok.encode(target).ids])
                losses.append(float(model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, **kwargs).loss))
            theirs = tok.decode(out[0].tolist(), skip_special_tokens=True)
            if theirs == mine:
                same += 1
            else:
                failed = True
                print(f"{name}: '{source}' ({task}): PEFT generates '{theirs}', polyctl '{mine}'")
        ce = sum(losses) / len(losses)
        diff = abs(ce - our_ce) / max(abs(ce), 1e-12)
        if diff > args.tolerance:
            failed = True
        print(f"{name:6s} generations identical {same}/{len(ours)}  cross-entropy PEFT {ce:.6f} polyctl {our_ce:.6f} (rel. diff {diff:.1e})")
    print("FAILED" if failed else "OK: every text-to-text run folder loads with PeftModel.from_pretrained and generates the same")
    return 1 if failed else 0


if __name__ == "__main__":
    main()
