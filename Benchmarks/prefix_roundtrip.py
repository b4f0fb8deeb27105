#!/usr/bin/env python3
"""Proves the PolyPEFT -> PEFT direction for prefix tuning: a prefix trained and saved by PolyPEFT on BERT and T5
loads into Hugging Face PEFT (`PeftModel.from_pretrained`, our config file unchanged) and computes the same outputs.

Optional; needs torch, transformers, peft and safetensors. Not part of the required tests (the PEFT -> PolyPEFT
direction is covered by the golden suite). From the repository root:

    swift build -c release --package-path Benchmarks        # once; a few minutes cold
    python3 Benchmarks/prefix_roundtrip.py [--case NAME ...] [--steps 40] [--keep DIR] [--binary PATH]

Per case, with fixed seeds: builds a tiny random model with transformers (eager attention, dropout 0, layer norms
randomised) and writes it with `save_pretrained`, plus an inputs file (ids with padding; BERT token types 1 from
position 3 on); runs `swift run -c release --package-path Benchmarks prefix-roundtrip` (or `--binary`), which loads
the folder, attaches prefix tuning, trains it with Adam on a seeded toy objective, saves the PEFT folder and writes
its outputs; then loads that folder with `PeftModel.from_pretrained` on a fresh copy of the model and runs PEFT's
forward (`PeftModelForFeatureExtraction`, `...ForSequenceClassification`, `...ForSeq2SeqLM`). Cases:

    bert_features       BertModel (pooler too), FEATURE_EXTRACTION (PEFT drops token_type_ids), 4 virtual tokens
    bert_features_proj  the same with prefix_projection (encoder_hidden_size 8): the file holds the projected table
    bert_cls            BertForSequenceClassification (3 labels), SEQ_CLS: token types kept, and the classifier
                        trains and is saved with the prefix (PEFT's modules_to_save), 3 virtual tokens
    bert_cls_proj       the same with prefix_projection
    t5                  T5ForConditionalGeneration, 3 + 3 blocks, SEQ_2_SEQ_LM: decoder block i reads slices
                        4i mod 6 and 4i mod 6 + 1 of the table (PEFT 0.21.2's layout), 4 virtual tokens
    t5_proj             3 encoder + 2 decoder blocks (num_layers 3 from the encoder), prefix_projection, 3 tokens

PEFT 0.21.2 refuses the SEQ_CLS forward with transformers 5.24 (see `peft_forward`); the script then runs the
lines of PEFT's forward itself on PEFT's loaded model and prints `peft_forward=replicated` (else `own`).

Prints per case the largest absolute and relative difference (relative: to the largest magnitude of PEFT's output)
between PEFT and PolyPEFT over every output (`last_hidden_state` and `pooler_output`, or `logits`), the same for the
base model alone and for PolyPEFT's own reload of the folder; how far PEFT's output is from the base model's
(`adapter_effect`) and from the loaded model run without its prefix (`prefix_effect`; for SEQ_CLS the trained
classifier stays), both relative and both required to exceed 1e-2 so that a prefix that does nothing cannot pass;
any warning PEFT raises while loading (none allowed); and how our `adapter_config.json` differs from the one PEFT's
`save_pretrained` writes for the same config on the same model (`peft_version` and `base_model_name_or_path` may
differ; `modules_to_save` may repeat names, as PEFT's own file does). Exits non-zero
when a difference exceeds `--tolerance` (1e-5) or a check fails. Measured results are in README.md
("Interoperability with Hugging Face PEFT").
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import peft
import torch
import transformers
from peft import PeftModel, PrefixTuningConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForSequenceClassification, BertModel, T5Config, T5ForConditionalGeneration

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))

CASES = {
    "bert_features": dict(model="bert", tokens=4, projection=None),
    "bert_features_proj": dict(model="bert", tokens=4, projection=8),
    "bert_cls": dict(model="bert_cls", tokens=3, projection=None),
    "bert_cls_proj": dict(model="bert_cls", tokens=3, projection=8),
    "t5": dict(model="t5", layers=(3, 3), tokens=4, projection=None),
    "t5_proj": dict(model="t5", layers=(3, 2), tokens=3, projection=8),
}

# Keys of adapter_config.json that may differ from PEFT's own file: PEFT's save_pretrained writes its version and
# the path the base model was loaded from.
CONFIG_KEYS_ALLOWED_TO_DIFFER = {"peft_version", "base_model_name_or_path"}


def build_model(case, seed):
    """The case's base model (eval mode) and its outputs' names."""
    torch.manual_seed(seed)
    if case["model"] == "t5":
        enc, dec = case["layers"]
        config = T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=enc, num_decoder_layers=dec,
                          num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=16,
                          dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True,
                          decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, attn_implementation="eager")
        model = T5ForConditionalGeneration(config)
    else:
        config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=32, max_position_embeddings=32, type_vocab_size=2,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0,
                            initializer_range=0.2, num_labels=3, attn_implementation="eager")
        model = BertForSequenceClassification(config) if case["model"] == "bert_cls" else BertModel(config)
    # Norms start as the identity map; random affine parameters make every layer matter.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.5 * torch.randn_like(p))
    return model.eval()


def load_model(case, folder):
    cls = {"t5": T5ForConditionalGeneration, "bert": BertModel, "bert_cls": BertForSequenceClassification}[case["model"]]
    return cls.from_pretrained(folder, attn_implementation="eager").eval()


def make_inputs(case, seed):
    g = torch.Generator().manual_seed(seed)
    batch, seq = 3, 7
    inputs = {"input_ids": torch.randint(2, 50, (batch, seq), generator=g),
              "attention_mask": torch.ones(batch, seq, dtype=torch.long)}
    inputs["attention_mask"][1, 5:] = 0
    inputs["attention_mask"][2, 3:] = 0
    if case["model"] == "t5":
        dec = torch.randint(2, 50, (batch, 5), generator=g)
        dec[:, 0] = 0  # decoder_start_token_id
        inputs["decoder_input_ids"] = dec
    else:
        inputs["token_type_ids"] = torch.zeros(batch, seq, dtype=torch.long)
        inputs["token_type_ids"][:, 3:] = 1
    return inputs


def named_outputs(case, out):
    if case["model"] == "bert":
        return {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}
    return {"logits": out.logits}


def peft_forward(case, loaded, inputs):
    """PEFT's forward of the loaded adapter, and whether PEFT's own `forward` ran ("own") or the replica below.

    PEFT 0.21.2's `PeftModelForSequenceClassification` refuses prefix tuning on transformers 5.24 ("Model does not
    support past key values which are required for prefix tuning."): it looks for a `past_key_values` parameter in the
    signature of the model's forward, and BertModel.forward now calls it `cache` (`past_key_values` is still accepted
    as a deprecated keyword). When it refuses, this runs the lines of its `forward` and `_prefix_tuning_forward` for a
    model that takes `past_key_values`: the mask with P ones prepended, token types kept, PEFT's own `get_prompt` and
    its loaded classifier (`loaded.base_model` is the BERT classifier with PEFT's ModulesToSaveWrapper)."""
    try:
        return loaded(**inputs), "own"
    except ValueError as error:
        if case["model"] != "bert_cls" or "does not support past key values" not in str(error):
            raise
    batch = inputs["input_ids"].shape[0]
    mask = torch.cat((torch.ones(batch, loaded.active_peft_config.num_virtual_tokens), inputs["attention_mask"]), dim=1)
    return loaded.base_model(input_ids=inputs["input_ids"], attention_mask=mask, token_type_ids=inputs["token_type_ids"],
                             past_key_values=loaded.get_prompt(batch)), "replicated"


def compare(ours, theirs):
    """Largest absolute difference and that relative to the largest magnitude of `theirs`."""
    worst_abs, worst_rel = 0.0, 0.0
    for name, t in theirs.items():
        t = t.detach().double().numpy()
        d = np.abs(ours[name].double().numpy() - t)
        worst_abs = max(worst_abs, float(d.max()))
        worst_rel = max(worst_rel, float(d.max() / (np.abs(t).max() + 1e-12)))
    return worst_abs, worst_rel


def config_differences(ours_path, peft_path):
    ours, theirs = json.load(open(ours_path)), json.load(open(peft_path))
    diffs = {}
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key, "<absent>"), theirs.get(key, "<absent>")
        if key == "modules_to_save" and isinstance(a, list) and isinstance(b, list) and set(a) == set(b):
            continue  # PEFT's own file repeats the classifier names (its wrapper adds them twice)
        if a != b:
            diffs[key] = (a, b)
    return diffs


def run_case(name, case, args, root):
    work = os.path.join(root, name)
    os.makedirs(work, exist_ok=True)
    model_dir, adapter_dir = os.path.join(work, "model"), os.path.join(work, "adapter")
    inputs_path, outputs_path = os.path.join(work, "inputs.safetensors"), os.path.join(work, "outputs.safetensors")
    seed = 100 + sorted(CASES).index(name)

    model = build_model(case, seed)
    model.save_pretrained(model_dir)
    inputs = make_inputs(case, seed)
    save_file(inputs, inputs_path)
    with torch.no_grad():
        base = named_outputs(case, model(**inputs))

    command = [args.binary] if args.binary else ["swift", "run", "-c", "release", "--package-path", BENCHMARKS,
                                                 "prefix-roundtrip"]
    command += [
        "--model", model_dir, "--inputs", inputs_path, "--adapter", adapter_dir, "--outputs", outputs_path,
        "--virtual-tokens", str(case["tokens"]), "--steps", str(args.steps), "--seed", str(seed)]
    if case["projection"]:
        command += ["--projection", str(case["projection"])]
    swift = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    ours = load_file(outputs_path)
    config = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = PeftModel.from_pretrained(load_model(case, model_dir), adapter_dir)
    loaded.eval()
    peft_warnings = [f"{w.category.__name__}: {w.message}" for w in caught
                     if os.sep + "peft" + os.sep in w.filename]
    with torch.no_grad():
        out, route = peft_forward(case, loaded, inputs)
        theirs = named_outputs(case, out)
        # The loaded model without its prefix: PEFT's wrapper holds the model directly (`base_model`), with the
        # loaded classifier for SEQ_CLS; token types dropped where PEFT drops them.
        plain = {k: v for k, v in inputs.items() if k != "token_type_ids" or config["task_type"] != "FEATURE_EXTRACTION"}
        unprefixed = named_outputs(case, loaded.base_model(**plain))

    # PEFT's own file for the same config on the same model (untrained; only the config is compared).
    reference = get_peft_model(load_model(case, model_dir), PrefixTuningConfig(
        num_virtual_tokens=case["tokens"], task_type=config["task_type"],
        prefix_projection=case["projection"] is not None, encoder_hidden_size=case["projection"]))
    reference.save_pretrained(os.path.join(work, "peft_reference"))
    diffs = config_differences(os.path.join(adapter_dir, "adapter_config.json"),
                               os.path.join(work, "peft_reference", "adapter_config.json"))

    result = {
        "peft": compare({k[5:]: v for k, v in ours.items() if k.startswith("peft.")}, theirs),
        "base": compare({k[5:]: v for k, v in ours.items() if k.startswith("base.")}, base),
        "reloaded": compare({k[9:]: v for k, v in ours.items() if k.startswith("reloaded.")}, theirs),
    }
    def moved(other):
        return max(float((theirs[k] - other[k]).abs().max() / (other[k].abs().max() + 1e-12)) for k in theirs)
    effect, prefix_effect = moved(base), moved(unprefixed)
    unexpected = {k: v for k, v in diffs.items() if k not in CONFIG_KEYS_ALLOWED_TO_DIFFER}
    ok = (all(rel <= args.tolerance for _, rel in result.values()) and min(effect, prefix_effect) > 1e-2
          and not peft_warnings and not unexpected)

    saved = sorted(load_file(os.path.join(adapter_dir, "adapter_model.safetensors")))
    print(f"== {name}: {config['task_type']}, {case['tokens']} virtual tokens, "
          f"projection {case['projection'] or 'none'}, saved {saved}")
    for line in swift.strip().splitlines():
        print("   swift: " + line)
    for what, (a, r) in result.items():
        print(f"   {what:8s} max_abs_diff={a:.3e} max_rel_diff={r:.3e}")
    print(f"   peft_forward={route}")
    print(f"   adapter_effect={effect:.3e} prefix_effect={prefix_effect:.3e}")
    print(f"   peft_load_warnings={peft_warnings or 'none'}")
    print(f"   config_vs_peft={diffs or 'identical'}")
    print(f"   {name}=" + ("ok" if ok else "FAILED"))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="run only these cases (repeatable)")
    ap.add_argument("--steps", type=int, default=40, help="Adam steps of the toy training")
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--binary", help="a built prefix-roundtrip executable instead of `swift run`")
    ap.add_argument("--keep", help="write every case's files under this directory and keep them")
    args = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")  # PEFT's and transformers' notes on every forward; loading records its own
    root = args.keep or tempfile.mkdtemp(prefix="polypeft-prefix-roundtrip-")
    print(f"torch={torch.__version__} peft={peft.__version__} transformers={transformers.__version__}")
    results = [run_case(name, CASES[name], args, root) for name in (args.case or list(CASES))]
    if not args.keep:
        shutil.rmtree(root)
    print("roundtrip=" + ("ok" if all(results) else "FAILED"))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
