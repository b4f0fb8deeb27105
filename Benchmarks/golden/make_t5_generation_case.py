#!/usr/bin/env python3
"""Writes a golden case for T5 text generation from the real Hugging Face stack: a tiny random T5ForConditionalGeneration
(transformers) saved as an HF folder (config.json + model.safetensors), inputs, and the sequences `generate` returns
for greedy search and for beam search (3 beams, length penalties 1.0 and 0.5; `early_stopping=False`, HF's default).

    python3 Benchmarks/golden/make_t5_generation_case.py OUT_DIR   # e.g. Tests/PolyPEFTTests/Resources/golden/t5_generate

Needs torch and transformers. Deterministic (seed 3, one thread). EOS is token 9, which the model often predicts
first, so searches finish at different lengths and the length penalty decides between them. Every search is rerun in
float64 and the script fails unless the sequences are identical: no choice hangs on a near-tie that Float32
rounding could flip.
"""
import json
import os
import sys

import torch
import transformers
from transformers import T5Config, T5ForConditionalGeneration

def main(out, seed=3):
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    config = T5Config(vocab_size=24, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
                      feed_forward_proj="relu", tie_word_embeddings=True, decoder_start_token_id=0, eos_token_id=9,
                      pad_token_id=0)
    model = T5ForConditionalGeneration(config).eval()
    model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
    for extra in ["generation_config.json", "README.md"]:
        p = os.path.join(out, "model", extra)
        if os.path.exists(p):
            os.remove(p)
    input_ids = torch.tensor([[3, 4, 5, 6, 2], [7, 8, 10, 1, 0], [10, 3, 3, 12, 5]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    runs = [
        {"name": "greedy", "num_beams": 1, "max_length": 9, "length_penalty": 1.0},
        {"name": "beam3", "num_beams": 3, "max_length": 8, "length_penalty": 1.0},
        {"name": "beam3_lp05", "num_beams": 3, "max_length": 8, "length_penalty": 0.5},
    ]
    results = []
    for r in runs:
        found = [search(model.to(dt), input_ids, attention_mask, r, config.eos_token_id) for dt in [torch.float32, torch.float64]]
        if found[0] != found[1]:
            sys.exit(f"{r['name']}: float32 {found[0]} and float64 {found[1]} differ (a near-tie); try another seed")
        results.append(dict(r, sequences=found[0]))
    model.to(torch.float32)
    with open(os.path.join(out, "generation.json"), "w") as f:
        json.dump({"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist(), "runs": results,
                   "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                   "seed": seed}, f, indent=1)
        f.write("\n")


def search(model, input_ids, attention_mask, r, eos):
    with torch.no_grad():
        seqs = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                              num_beams=r["num_beams"], max_length=r["max_length"], length_penalty=r["length_penalty"],
                              early_stopping=False, num_return_sequences=1)
    # HF pads finished sequences with pad_token_id after EOS; cut after the first EOS past the start token.
    return [s[:next((i + 1 for i, t in enumerate(s) if i > 0 and t == eos), len(s))] for s in seqs.tolist()]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
