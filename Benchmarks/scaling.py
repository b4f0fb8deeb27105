#!/usr/bin/env python3
"""Time per Poly training step against tasks, skills, splits and tokens (`polyctl bench layer`), as a markdown table.

Each row changes one knob from the `bench layer` defaults (1024 -> 1024, r 8, 8 skills, 1 split, 16 tasks,
32 sequences x 64 tokens, mixed tasks, parameter mixing) and reports the base figures next to Poly's, so one can
see which costs stay flat.

Usage: python3 Benchmarks/scaling.py [--threads 1] [--repeat 3] [--polyctl .build/release/polyctl]
"""
import argparse
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEPS = [("tasks", [1, 10, 100, 1000]), ("skills", [2, 8, 32, 64]), ("splits", [1, 4, 16, 64]),
          ("tokens", [16, 64, 256])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1")
    ap.add_argument("--repeat", default="3")
    ap.add_argument("--polyctl", default=os.path.join(ROOT, ".build", "release", "polyctl"))
    a = ap.parse_args()
    print(f"load average at start: {open('/proc/loadavg').read().split()[0]}\n")
    print("| knob | value | base fwd ms | Poly infer ms | train step ms | train step + dx ms | base fwd + dx ms "
          "| overhead infer | overhead train | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for knob, values in SWEEPS:
        for v in values:
            cmd = [a.polyctl, "bench", "layer", "--json", "--threads", a.threads, "--repeat", a.repeat, f"--{knob}", str(v)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            j = json.loads(next(l for l in out.splitlines() if l.startswith("{")))
            print(f"| {knob} | {v} | {j['base_forward_ms']:.1f} | {j['poly_infer_ms']:.1f} | {j['train_step_ms']:.1f} "
                  f"| {j['train_step_dx_ms']:.1f} | {j['base_forward_dx_ms']:.1f} | {j['overhead_infer']:.3f} "
                  f"| {j['overhead_train']:.3f} | {j['load']} |", flush=True)


if __name__ == "__main__":
    main()
