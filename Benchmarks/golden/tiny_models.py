"""The tiny Hugging Face models and inputs the golden generators share (random weights, built from code), and their
JSON writer.

`make_method_cases.py` (PEFT), `make_bottleneck_cases.py` and its followers (adapters), `make_arrow_cases.py` and
`make_mbc_cases.py` import these, so the base models of every golden set are built one way. Needs torch and
transformers only.
"""
import json
import re

import torch
from transformers import BertConfig, BertModel, T5Config, T5ForConditionalGeneration

# The seed of each kind's base (BERT, T5): the same base weights in every golden set built with `build_base`.
BASE_SEED = {"bert": 1234, "t5": 5678}


def bert_config():
    return BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
                      max_position_embeddings=32, type_vocab_size=2, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, initializer_range=0.2, attn_implementation="eager")


def t5_config():
    return T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=4,
                    relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
                    feed_forward_proj="relu", tie_word_embeddings=True, decoder_start_token_id=0, eos_token_id=1,
                    pad_token_id=0, attn_implementation="eager")


def randomize_norms(model):
    # Norms start as the identity map, which makes sum(output^2) nearly constant (tiny gradients): give them random
    # affine parameters (weights 1 + 0.5 N(0,1), biases 0.5 N(0,1)).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.5 * torch.randn_like(p))


def transformer_inputs(kind):
    """BERT: ids, mask (row 1 padded from 4) and token types [3, 6]; T5: ids and mask [2, 5], decoder ids [2, 4]."""
    batch, seq = (3, 6) if kind == "bert" else (2, 5)
    input_ids = torch.randint(2, 50, (batch, seq))
    attention_mask = torch.ones(batch, seq, dtype=torch.long)
    attention_mask[1, 4:] = 0
    if kind == "bert":
        token_type_ids = torch.zeros(3, 6, dtype=torch.long)
        token_type_ids[:, 3:] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    decoder_input_ids = torch.randint(2, 50, (batch, 4))
    decoder_input_ids[:, 0] = 0  # decoder_start_token_id
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids}


def new_model(kind, config):
    if kind == "bert":
        return BertModel(config, add_pooling_layer=False)
    return T5ForConditionalGeneration(config)


def build_base(kind):
    """The same base model and inputs for every case of a kind (seeded per kind): identical base files."""
    torch.manual_seed(BASE_SEED[kind])
    config = bert_config() if kind == "bert" else t5_config()
    model = new_model(kind, config).eval()
    randomize_norms(model)
    inputs = transformer_inputs(kind)
    return model, config, inputs


def fresh_base(kind, config, state):
    model = new_model(kind, config)
    model.load_state_dict(state)
    return model.eval()


def compact_json(obj):
    """json.dumps(indent=2, sort_keys=True) with lists of numbers (shapes) kept on one line."""
    text = json.dumps(obj, indent=2, sort_keys=True)
    return re.sub(r"\[\s*(-?[0-9.eE+-]+(?:,\s*-?[0-9.eE+-]+)*)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
