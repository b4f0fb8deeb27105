#!/usr/bin/env python3
"""Compare PolyPEFT's matmul with numpy (OpenBLAS) float32 matmul on the same shapes, in the same run.

For every shape and thread count (1 and 2) this runs the release `polyctl bench matmul --json` and, right after, numpy
in a subprocess whose BLAS is limited to that many threads (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS;
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from that subprocess's environment because they slow OpenBLAS down
on this machine). Both time the same thing: best of R runs after a warm-up, result allocation included, operands
transposed as views when asked. Each pair is measured `--rounds` times and the best of each side is kept, which
filters out noise from other processes on a shared machine. With `--paired`, each round is one pair measured back to
back (the order alternating from round to round), and the table gives the median of the rounds' ratios, with their
lowest and highest: a host that slows down for minutes then moves both sides of a pair together instead of deciding
which side's best came from the quiet minute. The machine's FMA rate (`polyctl bench peak`, a
register-only loop) is printed before and after the table: a ratio is only worth reading when the two agree.

Usage (from the repository root, after `swift build -c release`):
    python3 Benchmarks/matmul_numpy.py [--polyctl .build/release/polyctl] [--rounds 2] [--threads 1,2] [--only 1024,2048]
                                       [--paired] [--markdown]
Optional script: numpy is needed here, never in the library or its tests.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

# (label, m, n, k, transpose_a)
SHAPES = [(f"[{s},{s}]x[{s},{s}]", s, s, s, False) for s in (128, 256, 512, 1024, 2048)] + [
    ("[2048,1024]x[1024,8]  (x A^T)", 2048, 8, 1024, False),
    ("[2048,8]x[8,1024]  (h B^T)", 2048, 1024, 8, False),
    ("[1024,2048]^T..x[2048,8]  (x^T g)", 1024, 8, 2048, True),
    ("[8,2048]^T..x[2048,1024]  (g^T x)", 8, 1024, 2048, True),
]

NUMPY_CHILD = r"""
import json, sys, time
import numpy as np
m, n, k, ta, reps = (int(v) for v in sys.argv[1:6])
rng = np.random.default_rng(42)
a = rng.uniform(-1, 1, (k, m)).astype(np.float32).T if ta else rng.uniform(-1, 1, (m, k)).astype(np.float32)
b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
a @ b
best = float("inf")
for _ in range(reps):
    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
print(json.dumps({"best_ms": best * 1e3, "gflops": 2 * m * n * k / best / 1e9}))
"""


def repeats(m, n, k):
    """About 0.3 s of work per measurement at ~40 GFLOP/s, between 5 and 200 runs."""
    seconds = 2 * m * n * k / 40e9
    return max(5, min(200, int(0.3 / seconds)))


def run_swift(polyctl, m, n, k, ta, threads, reps):
    cmd = [polyctl, "bench", "matmul", "--m", str(m), "--n", str(n), "--k", str(k), "--threads", str(threads),
           "--repeat", str(reps), "--json"] + (["--transpose-a"] if ta else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"polyctl failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[0])["gflops"]


def run_numpy(m, n, k, ta, threads, reps):
    env = dict(os.environ)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(var, None)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    out = subprocess.run([sys.executable, "-c", NUMPY_CHILD, str(m), str(n), str(k), str(int(ta)), str(reps)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"numpy child failed: {out.stderr}")
    return json.loads(out.stdout)["gflops"]


def run_peak(polyctl, threads):
    """The register-only FMA loop's GFLOP/s on `threads` threads (`polyctl bench peak`): the machine's ceiling."""
    out = subprocess.run([polyctl, "bench", "peak", "--threads", str(threads), "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"polyctl bench peak failed ({out.returncode}): {out.stderr}")
    return json.loads(out.stdout.splitlines()[0])["gflops"]


def peak_line(polyctl, thread_counts):
    return "FMA peak (polyctl bench peak): " + ", ".join(
        f"{run_peak(polyctl, t):.1f} GF/s on {t} thread{'s' if t > 1 else ''}" for t in thread_counts)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--polyctl", default=os.path.join(here, "..", ".build", "release", "polyctl"))
    parser.add_argument("--rounds", type=int, default=2, help="measurements per side; the best is kept")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--paired", action="store_true",
                        help="report the median of the rounds' paired ratios (and their range) instead of best against best")
    parser.add_argument("--only", default="", help="comma-separated square sizes or label parts to keep, e.g. 1024,2048 or 'x^T g'")
    args = parser.parse_args()
    if not os.path.exists(args.polyctl):
        sys.exit(f"{args.polyctl} not found: run `swift build -c release` first")

    rows = []
    keep = [s.strip() for s in args.only.split(",") if s.strip()]
    shapes = [s for s in SHAPES if not keep or any(s[0].startswith(f"[{w},{w}]") if w.isdigit() else w in s[0] for w in keep)]
    if not shapes:
        sys.exit(f"--only {args.only!r} matches no shape; labels: " + "; ".join(s[0] for s in SHAPES))
    thread_counts = [int(t) for t in args.threads.split(",")]
    before = peak_line(args.polyctl, thread_counts)
    if not args.markdown:
        print(f"before: {before}", flush=True)
    for label, m, n, k, ta in shapes:
        for threads in thread_counts:
            reps = repeats(m, n, k)
            pairs = []
            for r in range(args.rounds):
                if args.paired and r % 2 == 1:
                    numpy = run_numpy(m, n, k, ta, threads, reps)
                    swift = run_swift(args.polyctl, m, n, k, ta, threads, reps)
                else:
                    swift = run_swift(args.polyctl, m, n, k, ta, threads, reps)
                    numpy = run_numpy(m, n, k, ta, threads, reps)
                pairs.append((swift, numpy))
            if args.paired:
                ratios = [s_ / n_ for s_, n_ in pairs]
                swift = statistics.median(p[0] for p in pairs)
                numpy = statistics.median(p[1] for p in pairs)
                ratio, spread = statistics.median(ratios), f"{min(ratios):.2f}-{max(ratios):.2f}"
            else:
                swift, numpy = max(p[0] for p in pairs), max(p[1] for p in pairs)
                ratio, spread = swift / numpy, ""
            rows.append((label, threads, swift, numpy, ratio, spread))
            if not args.markdown:
                extra = f"  (rounds {spread})" if spread else ""
                print(f"{label:36s} t={threads}  swift {swift:7.2f} GF/s  numpy {numpy:7.2f} GF/s  ratio {ratio:5.2f}{extra}",
                      flush=True)
    if args.markdown:
        what = "median " if args.paired else ""
        print(f"| shape | threads | Swift GF/s | numpy GF/s | {what}ratio |" + (" range of rounds |" if args.paired else ""))
        print("|---|---:|---:|---:|---:|" + ("---:|" if args.paired else ""))
        for label, threads, swift, numpy, ratio, spread in rows:
            print(f"| `{label}` | {threads} | {swift:.1f} | {numpy:.1f} | {ratio:.2f} |" + (f" {spread} |" if spread else ""))
        print(f"\nBefore: {before}.  ")
    after = peak_line(args.polyctl, thread_counts)
    print(f"After: {after}." if args.markdown else f"after: {after}")


if __name__ == "__main__":
    main()
