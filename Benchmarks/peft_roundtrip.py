#!/usr/bin/env python3
"""Proves the PolyPEFT -> PEFT direction: an adapter written by `polyctl train` loads into Hugging Face PEFT
(`PeftModel.from_pretrained`) and computes the same outputs as PolyPEFT.

Optional; needs torch, peft and safetensors (e.g. `pip install torch peft`). Not part of the required tests (the
PEFT -> PolyPEFT direction is covered by the golden suite).

    python3 Benchmarks/peft_roundtrip.py [--polyctl .build/release/polyctl] [--method poly|mhr|lora|ia3|dora] [--steps 200]

Poly and MHR are compared task by task (PEFT gets `task_ids`); LoRA, IA3 and DoRA are one adapter shared by all tasks
(IA3 with polyctl's default feed-forward module fc2, or `--feedforward`). Prints the versions, the largest absolute
and relative differences over all tasks and samples, and how far PEFT's adapted outputs are from the base network's
(`adapter_effect`); exits non-zero above the tolerance, or when the loaded adapter changes nothing. Measured results
are in README.md ("Interoperability with Hugging Face PEFT").
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import peft
import torch
from peft import PeftModel
from safetensors.numpy import save_file
from safetensors.torch import load_file


class MLP(torch.nn.Module):
    """The base network of every polyctl run: fc1 (in -> hidden), relu, fc2 (hidden -> out)."""

    def __init__(self, d_in, hidden, d_out):
        super().__init__()
        self.fc1 = torch.nn.Linear(d_in, hidden)
        self.fc2 = torch.nn.Linear(hidden, d_out)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--polyctl", default=".build/release/polyctl")
    ap.add_argument("--method", default="poly", choices=["poly", "mhr", "lora", "ia3", "dora"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--mixing", default="parameters", choices=["parameters", "outputs"])
    ap.add_argument("--feedforward", choices=["fc2", "fc1", "both", "none"],
                    help="ia3: the targets whose input is scaled (default: polyctl's, fc2)")
    ap.add_argument("--export", action="store_true",
                    help="export every task as a plain LoRA (polyctl export) and load those into PEFT instead")
    args = ap.parse_args()
    routed = args.method in ("poly", "mhr")
    if args.export and not routed:
        ap.error("--export applies to poly and mhr")
    if args.feedforward and args.method != "ia3":
        ap.error("--feedforward applies to ia3")
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="polypeft-roundtrip-")
    run = os.path.join(work, "run")
    cmd = [args.polyctl, "train", "--method", args.method, "--steps", str(args.steps), "--output", run,
           "--no-baseline", "--quiet"]
    if routed:
        # PEFT implements parameter mixing only; output-mixing adapters reach PEFT through --export.
        cmd += ["--mixing", args.mixing if args.export else "parameters"]
    if args.feedforward:
        cmd += ["--feedforward", args.feedforward]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    spec = json.load(open(os.path.join(run, "polypeft_run.json")))
    weights = load_file(os.path.join(run, "base_model.safetensors"))
    hidden, d_in = weights["fc1.weight"].shape
    d_out = weights["fc2.weight"].shape[0]
    base = MLP(d_in, hidden, d_out)
    base.load_state_dict(weights)
    x = np.random.default_rng(0).standard_normal((args.samples, d_in)).astype(np.float32)
    xpath = os.path.join(work, "x.safetensors")
    save_file({"x": x}, xpath)
    xt = torch.from_numpy(x)[:, None, :]                  # PEFT's Poly layers need [batch, seq, in]
    with torch.no_grad():
        base_out = base(xt)[:, 0, :].double().numpy()     # before PEFT wraps the base in place
    if args.export:
        subprocess.run([args.polyctl, "export", "--adapter", run, "--output", os.path.join(work, "export")],
                       check=True, stdout=subprocess.DEVNULL)
    else:
        model = PeftModel.from_pretrained(base, run)
        model.eval()
    worst_abs, worst_rel, effect = 0.0, 0.0, 0.0
    tasks = spec["taskNames"] if routed else [None]
    for t, name in enumerate(tasks):
        infer = [args.polyctl, "infer", "--adapter", run, "--input", xpath] + (["--task", name] if name else [])
        out = subprocess.run(infer, check=True, capture_output=True, text=True).stdout
        ours = np.array([json.loads(line)["output"] for line in out.splitlines()], dtype=np.float64)
        with torch.no_grad():
            if args.export:
                fresh = MLP(d_in, hidden, d_out)
                fresh.load_state_dict(weights)
                lora = PeftModel.from_pretrained(fresh, os.path.join(work, "export", name))
                lora.eval()
                theirs = lora(xt)
            elif name is None:
                theirs = model(xt)
            else:
                theirs = model.base_model(xt, task_ids=torch.full((args.samples,), t, dtype=torch.long))
        theirs = theirs[:, 0, :].double().numpy()
        diff = np.abs(ours - theirs)
        worst_abs = max(worst_abs, float(diff.max()))
        worst_rel = max(worst_rel, float((diff / (np.abs(theirs).max() + 1e-12)).max()))
        effect = max(effect, float(np.abs(theirs - base_out).max()))
    mixing = (args.mixing if args.export else "parameters") if routed else "-"
    print(f"torch={torch.__version__} peft={peft.__version__}")
    print(f"method={args.method} mixing={mixing} export={args.export} tasks={len(tasks)} samples={args.samples}")
    print(f"max_abs_diff={worst_abs:.3e}")
    print(f"max_rel_diff={worst_rel:.3e}")
    # How far the adapter moves PEFT's outputs from the base network's: a loaded adapter that did nothing would
    # show 0 here (and would then match an untrained PolyPEFT adapter trivially).
    print(f"adapter_effect={effect:.3e}")
    ok = worst_rel <= args.tolerance and effect > 0
    print("roundtrip=" + ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
