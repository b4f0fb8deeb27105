#!/usr/bin/env python3
"""Trains every `polyctl train --method` on the built-in data and prints the EXPERIMENTS.md method table.

    swift build -c release --product polyctl
    python3 Benchmarks/method_table.py [--seeds 3] [--kinds numeric,text,text-to-text] [--methods lora,ssf]
    python3 Benchmarks/method_table.py --matched --kinds numeric,text [--seeds 3]   # at one parameter budget
    python3 Benchmarks/method_table.py --unions --kinds text,text-to-text [--seeds 3]   # fixed and task-routed unions

Each run is `polyctl train --method M [--text | --text-to-text] --seed S --no-baseline --json` with every other option
at its default; the table gives the mean (and spread over seeds) of the test score, the adapter's saved parameters
(`polyctl inspect`; text classification runs include the trained classifier head) and the wall time per step.
Standard library only; no torch.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

POLYCTL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build", "release", "polyctl")
NUMERIC = ["poly", "mhr", "lora", "dora", "ia3", "beft", "bitfit", "ssf", "sparse"]
TEXT = NUMERIC + ["ln-tuning", "prompt-tuning", "p-tuning", "prefix-tuning", "seq-bn", "double-seq-bn", "par-bn",
                  "compacter", "compacter-pp", "adapters-lora", "adapters-ia3", "adapters-prefix", "mam", "unipelt"]

# --unions: the adapters library's prefix tuning and its unions, with gates by the input (the library's) and by the task
# (PolyPEFT's task-routed gates), beside the sequential adapter alone.
UNIONS = [
    ("seq-bn", "seq-bn", []),
    ("adapters-prefix", "adapters-prefix", []),
    ("mam", "mam", []),
    ("mam, gated", "mam", ["--gating"]),
    ("mam, task gates", "mam", ["--task-gates"]),
    ("unipelt", "unipelt", []),
    ("unipelt, task gates", "unipelt", ["--task-gates"]),
]


# --matched: the numeric tasks at one budget, about LoRA rank 2's 336 trained scalars on fc1 (32 -> 64) and fc2 (64 -> 8);
# methods of a fixed size (IA3, BEFT, BitFit, SSF) at their own, below it.
MATCHED = [
    ("lora r2", "lora", ["--rank", "2"]),
    ("dora r2", "dora", ["--rank", "2"]),
    ("poly 2 skills r1", "poly", ["--skills", "2", "--rank", "1"]),
    ("mhr 2 skills r1, 4 splits", "mhr", ["--skills", "2", "--rank", "1"]),
    ("sparse 0.13, magnitude", "sparse", ["--density", "0.13"]),
    ("sparse 0.13, fisher", "sparse", ["--density", "0.13", "--selection", "fisher"]),
    ("ia3", "ia3", []), ("beft", "beft", []), ("bitfit", "bitfit", []), ("ssf", "ssf", []),
]

# --matched --kinds text: the built-in text tasks at about LoRA rank 2's 1,536 adapter scalars on the built-in BERT's
# query, value, intermediate.dense and output.dense (every text run also trains the classifier head's 132).
MATCHED_TEXT = [
    ("lora r2", "lora", ["--rank", "2"]),
    ("poly 2 skills r1", "poly", ["--skills", "2", "--rank", "1"]),
    ("sparse 0.125, fisher", "sparse", ["--density", "0.125", "--selection", "fisher"]),
    ("seq-bn, factor 2.7", "seq-bn", ["--reduction-factor", "2.7"]),
    ("double-seq-bn, factor 6", "double-seq-bn", ["--reduction-factor", "6"]),
    ("par-bn, factor 2.7", "par-bn", ["--reduction-factor", "2.7"]),
    ("compacter, factor 2", "compacter", ["--reduction-factor", "2"]),
    ("ia3", "ia3", []), ("ssf", "ssf", []), ("ln-tuning", "ln-tuning", []), ("prefix-tuning", "prefix-tuning", []),
]


def run(method, kind, seed, root, extra=()):
    out = os.path.join(root, f"{kind}-{method}-{seed}-{len(os.listdir(root))}")
    args = [POLYCTL, "train", "--method", method, "--seed", str(seed), "--no-baseline", "--json", "--output", out, *extra]
    if kind != "numeric":
        args.append("--" + kind)
    start = time.time()
    p = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.time() - start
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {p.stderr}")
    summary = json.loads(p.stdout.strip().split("\n")[-1])
    inspect = subprocess.run([POLYCTL, "inspect", out], capture_output=True, text=True).stdout
    params = int(re.search(r"Adapter parameters: ([\d,]+)", inspect).group(1).replace(",", ""))
    return summary, params, elapsed / summary["steps"] * 1000


def matched(seeds, root, kind):
    text = kind == "text"
    print(f"### {kind}, matched budget\n")
    print(f"| method | {'test accuracy' if text else 'test MSE'} (mean ± sd) | trained parameters | ms / step |")
    print("| --- | --- | --- | --- |")
    for label, method, extra in MATCHED_TEXT if text else MATCHED:
        results = [run(method, kind, s, root, extra) for s in range(seeds)]
        vals = [r[0]["test_accuracy"] * 100 if text else r[0]["test_loss"] for r in results]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        fmt = "{:.1f}%" if text else "{:.4f}"
        print(f"| {label} | {fmt.format(statistics.mean(vals))} ± {fmt.format(sd).rstrip('%')} | "
              f"{results[0][0]['trainable_parameters']:,} | {statistics.mean(r[2] for r in results):.2f} |", flush=True)
    print()


def unions(seeds, root, kinds):
    """One table: each union row on every kind (score mean ± sd, saved parameters, ms / step)."""
    keys = {"text": ("test_accuracy", 100), "text-to-text": ("test_exact_match", 100)}
    print("| method | " + " | ".join(f"{k} (mean ± sd) | saved | ms / step" for k in kinds) + " |")
    print("| --- |" + " --- | --- | --- |" * len(kinds))
    for label, method, extra in UNIONS:
        cells = []
        for kind in kinds:
            results = [run(method, kind, s, root, extra) for s in range(seeds)]
            vals = [r[0][keys[kind][0]] * keys[kind][1] for r in results]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.1f}% ± {sd:.1f} | {results[0][1]:,} | {statistics.mean(r[2] for r in results):.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--kinds", default="numeric,text,text-to-text")
    ap.add_argument("--methods", default="", help="comma-separated subset of the methods (default: all)")
    ap.add_argument("--matched", action="store_true", help="the numeric tasks at one parameter budget instead")
    ap.add_argument("--unions", action="store_true", help="the adapters library's unions, fixed and task-routed, instead")
    a = ap.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"CPU: {cpu}; seeds 0..{a.seeds - 1}\n")
    with tempfile.TemporaryDirectory() as root:
        if a.unions:
            unions(a.seeds, root, [k for k in a.kinds.split(",") if k in ("text", "text-to-text")])
            return
        if a.matched:
            for kind in a.kinds.split(","):
                if kind in ("numeric", "text"):
                    matched(a.seeds, root, kind)
            return
        for kind in a.kinds.split(","):
            score = {"numeric": ("test MSE", "test_loss", 1), "text": ("test accuracy", "test_accuracy", 100),
                     "text-to-text": ("test exact match", "test_exact_match", 100)}[kind]
            print(f"### {kind}\n")
            print(f"| method | {score[0]} (mean ± sd) | saved parameters | ms / step |")
            print("| --- | --- | --- | --- |")
            chosen = a.methods.split(",") if a.methods else None
            for m in NUMERIC if kind == "numeric" else TEXT:
                if chosen and m not in chosen:
                    continue
                results = [run(m, kind, s, root) for s in range(a.seeds)]
                vals = [r[0][score[1]] * score[2] for r in results]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                fmt = "{:.4f}" if kind == "numeric" else "{:.1f}%"
                print(f"| {m} | {fmt.format(statistics.mean(vals))} ± {fmt.format(sd).rstrip('%')} | {results[0][1]:,} | "
                      f"{statistics.mean(r[2] for r in results):.2f} |", flush=True)
            print()


if __name__ == "__main__":
    main()
