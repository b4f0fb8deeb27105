#!/usr/bin/env python3
"""Kill test for `polyctl train` (issue 19): SIGKILL at random moments, resume, and compare with an uninterrupted run.

Each trial trains the same run into a fresh folder, kills the process with SIGKILL after a random delay (uniform
over the reference run's duration), optionally kills the first `--resume` too, then resumes until the run ends and
checks that the adapter, the optimizer state and the trainer state are byte-identical to those of an uninterrupted
run. A run killed before it wrote its settings (`polypeft_run.json`) is started again with the same command, which is
what a user would do. Any other outcome (a resume that fails, a difference) is a failure; the script exits 1.

    swift build -c release --product polyctl
    python3 Benchmarks/kill_test.py --trials 100 --seed 1

Standard library only.
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

COMPARED = ["adapter_model.safetensors", "checkpoint/optimizer.safetensors", "checkpoint/trainer_state.json"]


def train_args(args, out):
    return [args.polyctl, "train", "--steps", str(args.steps), "--batch-size", "32", "--eval-every", "500",
            "--no-baseline", "--quiet", "--checkpoint-every", str(args.checkpoint_every), "--checkpoint-seconds", "0",
            "--method", args.method, "--output", out]


def run_to_end(cmd, timeout):
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stderr.decode(errors="replace")


def start_and_kill(cmd, delay):
    """Starts `cmd`, SIGKILLs it after `delay` seconds; returns True when it was killed, False when it had ended."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--polyctl", default=".build/release/polyctl")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--checkpoint-every", type=int, default=250)
    ap.add_argument("--method", default="poly")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="polyctl-kill-")
    ref = os.path.join(work, "reference")
    t0 = time.monotonic()
    code, err = run_to_end(train_args(args, ref), args.timeout)
    duration = time.monotonic() - t0
    if code != 0:
        sys.exit(f"reference run failed ({code}): {err}")
    expected = {f: read(os.path.join(ref, f)) for f in COMPARED}
    failures, kills, restarts = [], 0, 0
    for trial in range(args.trials):
        out = os.path.join(work, f"t{trial}")
        cmd = train_args(args, out)
        kills += start_and_kill(cmd, rng.uniform(0, duration))
        resume = [args.polyctl, "train", "--resume", out, "--quiet", "--no-baseline"]
        if not os.path.exists(os.path.join(out, "polypeft_run.json")):
            restarts += 1
            shutil.rmtree(out, ignore_errors=True)
            code, err = run_to_end(cmd, args.timeout)
        else:
            if rng.random() < 0.5:
                kills += start_and_kill(resume, rng.uniform(0, duration))
            code, err = run_to_end(resume, args.timeout)
        problem = None
        if code != 0:
            problem = f"exit {code}: {err.strip()}"
        else:
            diff = [f for f in COMPARED if read(os.path.join(out, f)) != expected[f]]
            if diff:
                problem = "differs from the uninterrupted run: " + ", ".join(diff)
        if problem:
            failures.append((trial, problem))
            print(f"trial {trial}: FAIL {problem}", flush=True)
        else:
            shutil.rmtree(out, ignore_errors=True)
    print(f"kill test: {args.trials} trials, {kills} SIGKILLs ({restarts} before the run began), "
          f"{len(failures)} failures; reference run {duration:.2f} s ({args.steps} steps, {args.method}), "
          f"seed {args.seed}")
    if not args.keep and not failures:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
