#!/usr/bin/env python3
"""PolyPEFT against PyTorch + PEFT on the CPU, side by side, on identical weights and data.

For every case (layer, train, infer, t5, bert) and thread count (1 and 2 by default):
  1. runs the release `polyctl bench <case> --threads T --json --dump FILE` (Swift; times itself, and writes its
     weights, inputs, task ids / batch order and first outputs to FILE);
  2. runs this script as a worker in a child process with OMP_NUM_THREADS=T and torch.set_num_threads(T), which builds
     the same model with PEFT (get_peft_model + PolyConfig), loads FILE's weights, checks that its first outputs agree
     with PolyPEFT's to 1e-4 (torch.allclose, rtol = atol = 1e-4), and times the same work the same way (best of R
     rounds after a warm-up; the layer figures interleaved round by round);
  3. reads each child's peak resident memory from os.wait4.
Each case block ends with `ratio_<case>_t<T>=<pytorch seconds / polypeft seconds>`; the layer case also prints
`overhead_layer_..._t<T>=<fraction over the frozen base>` for both libraries.

PEFT's Poly has only parameter mixing, so PolyPEFT runs with `--mixing parameters` throughout. PEFT's Poly layer
multiplies with bmm and therefore needs 3-D inputs: the MLP cases feed [N, 1, 32] to PyTorch ([N, 32] to PolyPEFT,
the same maths). Training draws different relaxed-Bernoulli noise in the two libraries, so agreement is checked on the
evaluation-mode outputs of the first batch with the initial weights.

The t5 case is a T5-small-sized T5ForConditionalGeneration (vocab 32128, d_model 512, d_kv 64, d_ff 2048, 6+6 layers,
8 heads, relu, dropout 0.1, tied head) with random weights from polyctl's seed, base frozen, Poly/MHR on every
attention q and v (r 8, 8 skills, 8 splits, 4 tasks, random B), batch 8 x 128 source and target tokens, task of sample
b = b mod 4. The worker loads the dumped HF-named weights with load_state_dict (the tied embedding is dumped once, as
shared.weight) and the adapter with set_peft_model_state_dict, checks the evaluation-mode loss and the logits at four
decoder positions, then times interleaved a training step (train-mode forward + loss + backward + AdamW on the
adapter) and the evaluation-mode loss. `ratio_t5_t<T>` is the training step, `ratio_t5_t<T>_eval` the forward. The
dump is ~250 MB; it lives in a temporary directory deleted at the end, as every case's.

The bert case is a BertModel of all-MiniLM-L6-v2's shape (vocab 30522, hidden 384, 6 layers, 12 heads, intermediate
1536, gelu, no pooler) with random weights from polyctl's seed, or a real checkpoint (`--bert-args "--model DIR"`,
read as published), base frozen, Poly on every query and value (r 8, 8 skills, 4 tasks, random B), batch 32 x 128
tokens by default (`--bert-args "--batch 8 --seq 64"`), task of sample b = b mod 4. The worker checks the mixed-task
last hidden state of the first two samples, then times interleaved mixed-task and single-task inference, a training
step (loss = mean of the squared last hidden state, AdamW on the adapter) and, for the merged figure, PEFT's model
with the adapter disabled (PEFT cannot merge Poly; a merged model costs the base model). It prints
`ratio_bert_<mixed|single|merged|train_step>_t<T>=` and `peak_rss_ratio_bert_t<T>=` (PyTorch's peak over ours).

Usage: python3 Benchmarks/compare_peft.py [--case layer|train|infer|t5|bert|all] [--threads 1,2] [--rounds 3]
       [--polyctl .build/release/polyctl] [--steps 500] [--layer-args "--tokens 32"] [--t5-args "--layers 1"]
       [--bert-args "--batch 8 --seq 64"]
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_child(cmd, env=None):
    """Runs cmd; returns (stdout, peak RSS in MiB) using wait4 for this child's own rusage."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        err = p.stderr.read().decode()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} exited {p.returncode}\n{err}{text}")
    return text, usage.ru_maxrss / 1024.0


def last_json(text):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.exit(f"error: no JSON line in output:\n{text}")


# ----------------------------------------------------------------------------------------------------------------
# Worker side (PyTorch + PEFT), run in a child process so its peak memory is its own.

def worker(args):
    import torch
    from safetensors.torch import load_file
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t = load_file(args.dump)
    result = {"case": args.worker, "threads": args.threads, "torch": torch.__version__}
    workers = {"layer": worker_layer, "train": worker_train, "infer": worker_infer, "t5": worker_t5, "bert": worker_bert}
    result.update(workers[args.worker](args, t, torch))
    print(json.dumps(result))


def best_ms(fn, rounds, inner=1):
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) * 1000 / inner)
    return best


def interleaved_best_ms(named, rounds):
    for _, fn in named:
        fn()
    best = {name: float("inf") for name, _ in named}
    for _ in range(rounds):
        for name, fn in named:
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - start) * 1000)
    return {name + "_ms": v for name, v in best.items()}


def agree(name, ours, theirs, torch):
    diff = (ours - theirs).abs().max().item()
    ok = torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    return {f"maxdiff_{name}": diff, f"agree_{name}": bool(ok)}


def worker_layer(args, t, torch):
    from torch import nn
    from peft import PolyConfig, get_peft_model
    meta = json.loads(args.meta)
    out_f, in_f = t["base.weight"].shape

    class One(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(in_f, out_f)

        def forward(self, x):
            return self.lin(x)

    m = One()
    with torch.no_grad():
        m.lin.weight.copy_(t["base.weight"])
        m.lin.bias.copy_(t["base.bias"])
    cfg = PolyConfig(r=meta["r"], target_modules=["lin"], n_tasks=meta["tasks"], n_skills=meta["skills"],
                     n_splits=meta["splits"])
    pm = get_peft_model(m, cfg)
    layer = pm.base_model.model.lin
    with torch.no_grad():
        layer.poly_lora_A["default"].copy_(t["poly_lora_A"])
        layer.poly_lora_B["default"].copy_(t["poly_lora_B"])
        layer.poly_router["default"].module_logits.copy_(t["poly_router.module_logits"])
    x, g = t["x"], t["grad_seed"]
    tid = t["task_ids"].long()
    base = layer.base_layer
    pm.eval()
    with torch.no_grad():
        res = agree("base", t["y_base"], base(x), torch)
        res.update(agree("poly", t["y_poly"], pm.base_model(x, task_ids=tid), torch))
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)

    def infer_base():
        with torch.no_grad():
            base(x)

    def infer_poly():
        with torch.no_grad():
            pm.base_model(x, task_ids=tid)

    def train(dx):
        def step():
            xi = x.detach().requires_grad_(True) if dx else x
            pm.base_model(xi, task_ids=tid).backward(g)
            opt.step()
            opt.zero_grad()
        return step

    def base_dx():
        xi = x.detach().requires_grad_(True)
        base(xi).backward(g)

    def evaluating(fn):
        def run():
            pm.eval()
            fn()
        return run

    def training(fn):
        def run():
            pm.train()
            fn()
        return run

    # Interleaved like `polyctl bench layer`: every round times each figure once; the best per figure is kept.
    res.update(interleaved_best_ms([("base_forward", evaluating(infer_base)), ("poly_infer", evaluating(infer_poly)),
                                    ("train_step", training(train(False))), ("train_step_dx", training(train(True))),
                                    ("base_forward_dx", training(base_dx))], args.rounds))
    res["overhead_infer"] = res["poly_infer_ms"] / res["base_forward_ms"] - 1
    res["overhead_train"] = res["train_step_dx_ms"] / res["base_forward_dx_ms"] - 1
    return res


def build_mlp(t, torch):
    from torch import nn
    from peft import PolyConfig, get_peft_model, set_peft_model_state_dict
    import copy

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(32, 64)
            self.act1 = nn.ReLU()
            self.fc2 = nn.Linear(64, 8)

        def forward(self, x):
            return self.fc2(self.act1(self.fc1(x)))

    m = MLP()
    with torch.no_grad():
        for n in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]:
            dict(m.named_parameters())[n].copy_(t["base." + n])
    base = copy.deepcopy(m)
    n_tasks = t["base_model.model.fc1.poly_router.module_logits"].shape[0]
    n_splits, n_skills = t["base_model.model.fc1.poly_lora_A"].shape[:2]
    r = t["base_model.model.fc1.poly_lora_A"].shape[3]
    pm = get_peft_model(m, PolyConfig(r=r, target_modules=["fc1", "fc2"], n_tasks=n_tasks, n_skills=n_skills,
                                      n_splits=n_splits))
    adapter = {k: v for k, v in t.items() if k.startswith("base_model.model.")}
    res = set_peft_model_state_dict(pm, adapter)
    assert not res.unexpected_keys, res.unexpected_keys
    return pm, base


def worker_train(args, t, torch):
    import math
    pm, _ = build_mlp(t, torch)
    xs, ys, ts = t["train.inputs"], t["train.targets"], t["train.task_ids"].long()
    batches = t["batches"].long()
    total, warm = batches.shape[0], json.loads(args.meta)["warmup"]
    pm.eval()
    with torch.no_grad():
        b0 = batches[0]
        res = agree("first", t["y_first"], pm.base_model(xs[b0].unsqueeze(1), task_ids=ts[b0]).squeeze(1), torch)
    pm.train()
    router = [p for n, p in pm.named_parameters() if p.requires_grad and "poly_router" in n]
    rest = [p for n, p in pm.named_parameters() if p.requires_grad and "poly_router" not in n]
    params = rest + router
    opt = torch.optim.AdamW([{"params": rest, "lr": 1e-2, "weight_decay": 0.0},
                             {"params": router, "lr": 1e-1, "weight_decay": 0.0}])
    w = min(50, total // 10)

    def mult(step):  # PolyPEFT's LRSchedule.cosine
        if step < w:
            return (step + 1) / w
        p = min(max((step - w) / max(total - w, 1), 0.0), 1.0)
        return 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, mult)
    loss_fn = torch.nn.MSELoss()

    def step(i):
        idx = batches[i]
        opt.zero_grad()
        out = pm.base_model(xs[idx].unsqueeze(1), task_ids=ts[idx]).squeeze(1)
        loss = loss_fn(out, ys[idx])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        return loss

    for i in range(warm):
        step(i)
    start = time.perf_counter()
    for i in range(warm, total):
        loss = step(i)
    seconds = time.perf_counter() - start
    res.update({"seconds": seconds, "steps": total - warm, "ms_per_step": seconds * 1000 / (total - warm),
                "last_loss": loss.item()})
    return res


def worker_infer(args, t, torch):
    pm, base = build_mlp(t, torch)
    pm.eval()
    x = t["x"].unsqueeze(1)
    mixed = t["task_ids"].long()
    single = torch.zeros_like(mixed)
    with torch.no_grad():
        res = agree("base", t["y_base"], base(x).squeeze(1), torch)
        res.update(agree("mixed", t["y_mixed"], pm.base_model(x, task_ids=mixed).squeeze(1), torch))
        res.update(agree("single", t["y_single"], pm.base_model(x, task_ids=single).squeeze(1), torch))
        if "y_merged" in t:  # PolyPEFT with task 0 merged into the base weights against PEFT's on-the-fly task 0
            res.update(agree("merged", t["y_merged"], pm.base_model(x, task_ids=single).squeeze(1), torch))

        def timed(fn):
            once = best_ms(fn, 1)
            return best_ms(fn, args.rounds, inner=max(1, int(20 / max(once, 1e-3))))

        res["base_ms"] = timed(lambda: base(x))
        res["mixed_ms"] = timed(lambda: pm.base_model(x, task_ids=mixed))
        res["single_ms"] = timed(lambda: pm.base_model(x, task_ids=single))
    return res


T5_DATA_KEYS = {"input_ids", "labels", "task_ids", "eval_loss", "logits_positions", "logits_slice"}


def worker_t5(args, t, torch):
    """polyctl bench t5's model in transformers + PEFT: HF weights loaded by name, the adapter with
    set_peft_model_state_dict, the evaluation-mode loss and logits checked, then the same step timed."""
    from transformers import T5Config, T5ForConditionalGeneration
    from peft import PolyConfig, get_peft_model, set_peft_model_state_dict
    m = json.loads(args.meta)
    cfg = T5Config(vocab_size=m["vocab"], d_model=m["d_model"], d_kv=m["d_model"] // m["heads"], d_ff=m["d_ff"],
                   num_layers=m["layers"], num_heads=m["heads"], dropout_rate=0.1, feed_forward_proj="relu",
                   tie_word_embeddings=True, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = T5ForConditionalGeneration(cfg)
    names = set(model.state_dict().keys())
    # The dump holds each parameter once; the tied embedding only as shared.weight.
    tied = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}
    base = {k: t["shared.weight"] if k in tied else t[k] for k in names if k in t or k in tied}
    extra = [k for k in t if k not in names and k not in T5_DATA_KEYS and not k.startswith("base_model.model.")]
    assert not extra, f"dumped weights the PyTorch model does not have: {extra[:5]}"
    model.load_state_dict(base, strict=True)
    del base
    for k in [k for k in t if k in names]:  # free the dumped copies of the base weights
        del t[k]
    pm = get_peft_model(model, PolyConfig(task_type="SEQ_2_SEQ_LM", target_modules=["q", "v"], r=m["r"],
                                          n_tasks=m["tasks"], n_skills=m["skills"], n_splits=m["splits"],
                                          init_weights=False))
    adapter = {k: v for k, v in t.items() if k.startswith("base_model.model.")}
    res_load = set_peft_model_state_dict(pm, adapter)
    assert not res_load.unexpected_keys, res_load.unexpected_keys[:5]
    own = {k for k, _ in pm.named_parameters() if "poly_" in k}
    assert len(own) == len(adapter), f"PEFT has {len(own)} adapter tensors, the dump {len(adapter)}"
    ids, labels, tid = t["input_ids"].long(), t["labels"].long(), t["task_ids"].long()
    pm.eval()
    with torch.no_grad():
        out = pm(input_ids=ids, labels=labels, task_ids=tid)
        res = agree("loss", t["eval_loss"], out.loss.reshape(1), torch)
        res.update(agree("logits", t["logits_slice"], out.logits[:, t["logits_positions"].long(), :], torch))
        res["eval_loss"] = out.loss.item()
        del out
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)

    def train_step():
        pm.train()
        pm(input_ids=ids, labels=labels, task_ids=tid).loss.backward()
        opt.step()
        opt.zero_grad()

    def eval_forward():
        pm.eval()
        with torch.no_grad():
            pm(input_ids=ids, labels=labels, task_ids=tid).loss

    # Interleaved like `polyctl bench t5`: one warm-up each, then rounds that time both; the best per figure is kept.
    res.update(interleaved_best_ms([("train_step", train_step), ("eval_forward", eval_forward)], args.rounds))
    return res


BERT_DATA_KEYS = {"input_ids", "task_ids", "mixed_out"}


def worker_bert(args, t, torch):
    """polyctl bench bert's model in transformers + PEFT: HF weights loaded by name, the adapter with
    set_peft_model_state_dict, the mixed-task output checked, then the same work timed: mixed-task and single-task
    inference, a training step, and the base model without the adapter (what a merged model costs)."""
    from transformers import BertConfig, BertModel
    from peft import PolyConfig, get_peft_model, set_peft_model_state_dict
    m = json.loads(args.meta)
    cfg = BertConfig(vocab_size=m["vocab"], hidden_size=m["hidden"], num_hidden_layers=m["layers"],
                     num_attention_heads=m["heads"], intermediate_size=m["intermediate"],
                     max_position_embeddings=m["max_positions"], type_vocab_size=m["type_vocab"],
                     layer_norm_eps=m["layer_norm_eps"], hidden_act="gelu", attn_implementation="sdpa")
    model = BertModel(cfg, add_pooling_layer=False)
    names = set(model.state_dict().keys())
    base = {k: t[k] for k in names if k in t}
    extra = [k for k in t if k not in names and k not in BERT_DATA_KEYS and not k.startswith("base_model.model.")]
    assert not extra, f"dumped weights the PyTorch model does not have: {extra[:5]}"
    missing = model.load_state_dict(base, strict=False).missing_keys
    assert all("position_ids" in k or "token_type_ids" in k for k in missing), missing[:5]
    del base
    pm = get_peft_model(model, PolyConfig(target_modules=["query", "value"], r=m["r"], n_tasks=m["tasks"],
                                          n_skills=m["skills"], n_splits=m["splits"], init_weights=False))
    adapter = {k: v for k, v in t.items() if k.startswith("base_model.model.")}
    res_load = set_peft_model_state_dict(pm, adapter)
    assert not res_load.unexpected_keys, res_load.unexpected_keys[:5]
    # PEFT's generic PeftModel.forward does not pass task_ids to Poly; PolyModel.forward (pm.base_model) does.
    ids = t["input_ids"].long()
    mask = torch.ones_like(ids)
    mixed, single = t["task_ids"].long(), torch.zeros(ids.shape[0], dtype=torch.long)
    pm.eval()
    with torch.no_grad():
        out = pm.base_model(input_ids=ids, attention_mask=mask, task_ids=mixed).last_hidden_state
        res = agree("mixed_out", t["mixed_out"], out[: t["mixed_out"].shape[0]], torch)
        del out
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)

    def infer(tasks):
        def run():
            pm.eval()
            with torch.no_grad():
                pm.base_model(input_ids=ids, attention_mask=mask, task_ids=tasks)
        return run

    def train_step():
        pm.train()
        (pm.base_model(input_ids=ids, attention_mask=mask, task_ids=mixed).last_hidden_state ** 2).mean().backward()
        opt.step()
        opt.zero_grad()

    def base_forward():
        model.eval()
        with torch.no_grad(), pm.disable_adapter():
            pm.base_model(input_ids=ids, attention_mask=mask, task_ids=single)

    res.update(interleaved_best_ms([("mixed_infer", infer(mixed)), ("single_infer", infer(single)),
                                    ("train_step", train_step), ("merged_infer", base_forward)], args.rounds))
    return res


# ----------------------------------------------------------------------------------------------------------------
# Driver side.

def loadavg():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def compare(case, threads, args, tmp):
    dump = os.path.join(tmp, f"{case}_t{threads}.safetensors")
    cmd = [args.polyctl, "bench", case, "--threads", str(threads), "--json", "--dump", dump]
    meta = {}
    if case == "layer":
        cmd += ["--repeat", str(args.rounds), "--mixing", "parameters"] + shlex.split(args.layer_args)
    elif case == "train":
        cmd += ["--steps", str(args.steps), "--warmup", "20", "--mixing", "parameters"]
        meta["warmup"] = 20
    elif case == "t5":
        cmd += ["--repeat", str(args.rounds)] + shlex.split(args.t5_args)
    elif case == "bert":
        cmd += ["--repeat", str(args.rounds)] + shlex.split(args.bert_args)
    else:
        cmd += ["--repeat", str(args.rounds), "--mixing", "parameters"]
    env = dict(os.environ, POLYPEFT_THREADS=str(threads))
    swift_out, swift_rss = run_child(cmd, env)
    ours = last_json(swift_out)
    meta.update({k: ours[k] for k in ["r", "skills", "splits", "tasks", "layers", "d_model", "d_ff", "heads", "vocab",
                                      "hidden", "intermediate", "max_positions", "type_vocab", "layer_norm_eps"]
                 if k in ours})
    wenv = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="")
    wcmd = [sys.executable, os.path.abspath(__file__), "--worker", case, "--dump", dump, "--threads", str(threads),
            "--rounds", str(args.rounds), "--meta", json.dumps(meta)]
    torch_out, torch_rss = run_child(wcmd, wenv)
    theirs = last_json(torch_out)
    tag = f"{case}_t{threads}"
    print(f"== {case}, {threads} thread{'s' if threads > 1 else ''} (load average {loadavg()}; polypeft load {ours.get('load')})")
    bad = [k for k, v in theirs.items() if k.startswith("agree_") and not v]
    for k, v in theirs.items():
        if k.startswith("maxdiff_"):
            print(f"  agreement {k[8:]}: max |diff| {v:.2e} {'ok' if theirs['agree_' + k[8:]] else 'MISMATCH'}")
    print(f"  peak RSS: pytorch {torch_rss:.0f} MiB, polypeft {swift_rss:.0f} MiB")
    lines = []
    if case == "layer":
        for f in ["base_forward", "poly_infer", "train_step", "train_step_dx", "base_forward_dx"]:
            a, b = theirs[f + "_ms"], ours[f + "_ms"]
            print(f"  {f:16s} pytorch {a:9.3f} ms   polypeft {b:9.3f} ms   ratio {a / b:6.2f}")
        for o in ["infer", "train"]:
            print(f"  overhead_{o}: pytorch {theirs['overhead_' + o]:.4f}, polypeft {ours['overhead_' + o]:.4f}")
        lines += [f"overhead_{tag}_pytorch_infer={theirs['overhead_infer']:.4f}",
                  f"overhead_{tag}_pytorch_train={theirs['overhead_train']:.4f}",
                  f"overhead_{tag}_infer={ours['overhead_infer']:.4f}", f"overhead_{tag}_train={ours['overhead_train']:.4f}",
                  f"ratio_{tag}_infer={theirs['poly_infer_ms'] / ours['poly_infer_ms']:.3f}",
                  f"ratio_{tag}={theirs['train_step_dx_ms'] / ours['train_step_dx_ms']:.3f}"]
    elif case == "train":
        a, b = theirs["ms_per_step"], ours["ms_per_step"]
        print(f"  ms per step: pytorch {a:.4f} ({1000 / a:.0f} steps/s), polypeft {b:.4f} ({1000 / b:.0f} steps/s); "
              f"last loss pytorch {theirs['last_loss']:.5f}, polypeft {ours['last_loss']:.5f}")
        lines.append(f"ratio_{tag}={a / b:.3f}")
    elif case == "bert":
        for f in ["mixed_infer", "single_infer", "merged_infer", "train_step"]:
            a, b = theirs[f + "_ms"], ours[f + "_ms"]
            print(f"  {f:13s} pytorch {a:9.1f} ms   polypeft {b:9.1f} ms   ratio {a / b:6.2f}")
            lines.append(f"ratio_bert_{f.replace('_infer', '')}_t{threads}={a / b:.3f}")
        lines.append(f"peak_rss_ratio_bert_t{threads}={torch_rss / swift_rss:.3f}")
    elif case == "t5":
        print(f"  eval loss: pytorch {theirs['eval_loss']:.6f}, polypeft {ours['eval_loss']:.6f}")
        for f in ["eval_forward", "train_step"]:
            a, b = theirs[f + "_ms"], ours[f + "_ms"]
            print(f"  {f:12s} pytorch {a:9.1f} ms   polypeft {b:9.1f} ms   ratio {a / b:6.2f}")
        lines += [f"ratio_{tag}_eval={theirs['eval_forward_ms'] / ours['eval_forward_ms']:.3f}",
                  f"ratio_{tag}={theirs['train_step_ms'] / ours['train_step_ms']:.3f}"]
    else:
        for f in ["base", "mixed", "single"] + (["merged"] if "merged_ms" in ours else []):
            a = theirs.get(f + "_ms", theirs["single_ms"] if f == "merged" else None)
            b = ours[f + "_ms"]
            print(f"  {f:7s} pytorch {a:8.4f} ms   polypeft {b:8.4f} ms   ratio {a / b:6.2f}")
            if f != "base":
                lines.append(f"ratio_{tag}_{f}={a / b:.3f}")
        lines.append(f"ratio_{tag}={theirs['mixed_ms'] / ours['mixed_ms']:.3f}")
    for l in lines:
        print(l)
    sys.stdout.flush()
    return not bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="all", choices=["all", "layer", "train", "infer", "t5", "bert"])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--polyctl", default=os.path.join(ROOT, ".build", "release", "polyctl"))
    ap.add_argument("--layer-args", default="", help="extra options for polyctl bench layer, e.g. '--tokens 32'")
    ap.add_argument("--t5-args", default="", help="extra options for polyctl bench t5, e.g. '--layers 1 --seq 16'")
    ap.add_argument("--bert-args", default="", help="extra options for polyctl bench bert, e.g. '--batch 8 --seq 64' "
                    "or '--model DIR' (a real checkpoint)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    ap.add_argument("--meta", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.threads = int(args.threads)
        return worker(args)
    if not os.path.exists(args.polyctl):
        sys.exit(f"error: {args.polyctl} not found; run 'swift build -c release' first")
    cases = ["layer", "train", "infer", "t5", "bert"] if args.case == "all" else [args.case]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            for th in [int(s) for s in args.threads.split(",")]:
                ok = compare(case, th, args, tmp) and ok
    if not ok:
        sys.exit("error: outputs disagree (see MISMATCH above)")


if __name__ == "__main__":
    main()
