#!/usr/bin/env python3
"""PyTorch (+ PEFT) side of the T5 benchmark: the same step `t5-bench` times, on this machine's CPU.

A randomly initialised T5-small-sized model (d_model 512, 6+6 layers, 8 heads of 64, d_ff 2048, relu, vocab 32128,
dropout 0.1), source and target `seq` tokens, one training step = forward + loss + backward. `--frozen` freezes the
base and injects PEFT Poly/MHR adapters (r 8, 8 skills, 8 splits, 4 tasks) on every q and v, as `t5-bench ... 1` does.

    python3 Benchmarks/t5_torch.py [--batch 8] [--seq 128] [--runs 2] [--threads 2] [--frozen] [--compare]

With --compare it also runs the release `t5-bench` with the same arguments (build it first:
`(cd Benchmarks && swift build -c release)`) and prints `ratio_t5=<pytorch seconds / polypeft seconds>` last.
"""
import argparse
import os
import subprocess
import time

import torch
from transformers import T5Config, T5ForConditionalGeneration


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frozen", action="store_true")
    ap.add_argument("--compare", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8,
                      dropout_rate=0.1, feed_forward_proj="relu", tie_word_embeddings=True,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = T5ForConditionalGeneration(config)
    model.train()
    kwargs = {}
    if args.frozen:
        from peft import PolyConfig, get_peft_model
        model = get_peft_model(model, PolyConfig(task_type="SEQ_2_SEQ_LM", r=8, n_tasks=4, n_skills=8, n_splits=8,
                                                 target_modules=["q", "v"], init_weights=False))
        kwargs["task_ids"] = torch.arange(args.batch) % 4
    src = torch.randint(2, 32002, (args.batch, args.seq))
    labels = torch.randint(2, 32002, (args.batch, args.seq))
    best = float("inf")
    for i in range(args.runs + 1):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = model(input_ids=src, labels=labels, **kwargs).loss
        loss.backward()
        dt = time.perf_counter() - t0
        if i > 0:
            best = min(best, dt)
    mode = "frozen base + MHR on q/v" if args.frozen else "full fine-tune"
    print(f"pytorch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, seq {args.seq}, {mode}: {best:.3f} s/step")
    print(f"seconds={best:.4f}")
    if args.compare:
        here = os.path.dirname(os.path.abspath(__file__))
        exe = os.path.join(here, ".build", "release", "t5-bench")
        env = dict(os.environ, POLYPEFT_THREADS=str(args.threads))
        out = subprocess.run([exe, str(args.batch), str(args.seq), str(args.runs), "1" if args.frozen else "0"],
                             check=True, capture_output=True, text=True, env=env).stdout
        print(out.strip())
        ours = float([l for l in out.splitlines() if l.startswith("seconds=")][-1].split("=")[1])
        print(f"ratio_t5={best / ours:.3f}")


if __name__ == "__main__":
    main()
