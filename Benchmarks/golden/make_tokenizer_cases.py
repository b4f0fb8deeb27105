#!/usr/bin/env python3
"""Golden cases for PolyPEFT's tokenizers: a seeded multilingual corpus, tokenizers trained on other seeded lines
(no download), and the ids the `tokenizers` library computes for every line.

    pip install tokenizers==0.23.3 sentencepiece==0.2.3 protobuf
    python3 Benchmarks/golden/make_tokenizer_cases.py Tests/PolyPEFTTests/Resources/tokenizers

Writes into the output folder:
  wordpiece_uncased.json, wordpiece_cased.json   tokenizer.json files (BertNormalizer lowercase / cased, BertPreTokenizer,
                                                 WordPiece, BERT's template, WordPiece decoder), trained with `tokenizers`
  unigram_t5.json                                T5's layout: a SentencePiece Unigram model trained with `sentencepiece`
                                                 (nmt_nfkc rules, so the Precompiled normalizer), converted by
                                                 `tokenizers`' from_spm (Precompiled + Replace, Metaspace), T5's
                                                 `$A </s>` template and special tokens
  unigram_bytes.json                             the same with byte fallback and Llama's decoder chain (Replace, ByteFallback,
                                                 Fuse, Strip)
  corpus.jsonl                                   one {"text": ...} per line (2,400 lines)
  expected.jsonl                                 per tokenizer and line: ids (no padding, no truncation), type ids,
                                                 special-token mask, decoded text; plus pair / truncation / padding cases
"""
import json
import os
import random
import sys

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SEED = 20261202
LINES = 2400

ENGLISH = ("the quick brown fox jumps over lazy dog routing skills tasks adapters model training multitask learning "
           "parameter efficient fine tuning weights layer attention token embedding unbelievable internationalization "
           "don't won't it's we're they've I'm can't shouldn't o'clock rock'n'roll e-mail state-of-the-art").split()
ACCENTED = "café naïve Ångström Zürich façade résumé jalapeño crème brûlée São Paulo Kraków Dvořák Þór Øresund Ærø Łódź".split()
SCRIPTS = ["Καλημέρα κόσμε", "ΣΊΣΥΦΟΣ σοφός", "Привет мир", "ЁЛКА ёлка", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
           "สวัสดีชาวโลก", "안녕하세요 세계", "こんにちは世界", "カタカナ テキスト", "你好，世界！", "中文字符测试。", "繁體中文測試",
           "Tiếng Việt có dấu", "Türkçe İstanbul ığdır", "ǅemal ǈubljana ǋ", "straße STRASSE ß ẞ", "ﬁ ﬂ ﬀ ligatures", "Ⅻ ⅻ ①②③"]
EMOJI = ["😀", "🥰", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🇯🇵", "❤️", "✨", "🤖", "🫨", "🧑‍💻", "☕", "🏳️‍🌈", "🐍", "🦀"]
WHITESPACE = [" ", "  ", "\t", "\u00a0", "\u2003", "\u3000", "\u2009", "\u200b", "\u2028", "\u205f", "\u180e", "\r", "\x0b", "\x0c", "\u0085"]
CONTROL = ["\x00", "\x07", "\x1b", "\ufffd", "\u200d", "\u200e", "\ufeff", "\u00ad", "\ue000", "\U000f0000", "\u0378", "\x7f", "\x1c"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["«", "»", "„", "“", "”", "—", "–", "…", "¿", "¡", "、", "。", "·", "‰", "§", "¶", "‹", "›", "※", "〈", "〉", "﹏", "＿", "＂"]
SYMBOLS = ["€", "£", "¥", "©", "®", "™", "°", "±", "×", "÷", "∑", "√", "∞", "≠", "→", "⇒", "♠", "♥", "★", "☃", "𝔘𝔫𝔦", "𝟙𝟚", "½"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "c\u0327", "u\u031b\u0301", "i\u0307", "A\u030a", "Z\u0335\u0336"]
SPECIAL = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls]", "[MASK"]


def random_word(rng):
    kind = rng.random()
    if kind < 0.45:
        w = rng.choice(ENGLISH)
        r = rng.random()
        return w.upper() if r < 0.1 else w.title() if r < 0.25 else w
    if kind < 0.6:
        return rng.choice(ACCENTED)
    if kind < 0.7:
        return rng.choice(SCRIPTS)
    if kind < 0.76:
        return rng.choice(EMOJI)
    if kind < 0.82:
        return rng.choice(COMBINING) + rng.choice(ENGLISH)
    if kind < 0.86:
        return rng.choice(SYMBOLS)
    if kind < 0.89:
        return str(rng.randint(0, 10 ** rng.randint(1, 12)))
    if kind < 0.91:
        letters = "abcdefghijklmnopqrstuvwxyzéü"
        return "".join(rng.choice(letters) for _ in range(rng.randint(40, 160)))  # long words
    if kind < 0.93:
        return rng.choice(["https://example.com/a?b=c&d=e", "user@example.org", "C++/C#", "v1.2.3-rc.4", "#hashtag", "@mention"])
    if kind < 0.95:
        return rng.choice(SPECIAL)
    return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 4)))


def random_line(rng):
    parts = []
    for _ in range(rng.randint(0, 18)):
        parts.append(random_word(rng))
        r = rng.random()
        if r < 0.12:
            parts.append(rng.choice(PUNCT))
        elif r < 0.2:
            parts.append(rng.choice(CONTROL))
        sep = rng.choice(WHITESPACE) if rng.random() < 0.2 else (" " if rng.random() < 0.9 else "")
        parts.append(sep)
    return "".join(parts)


def bert_tokenizer(lowercase, corpus):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None if lowercase else False,
                                                lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=3000, min_frequency=2,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(corpus, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return tok


def unigram_tokenizer(work, lines, byte_fallback):
    """A SentencePiece Unigram model as T5 ships it, through the `tokenizers` library's converter."""
    import sentencepiece
    sys.path.insert(0, os.path.dirname(sentencepiece.__file__))  # sentencepiece_model_pb2, for from_spm
    from tokenizers.implementations import SentencePieceUnigramTokenizer
    text = os.path.join(work, "train.txt")
    with open(text, "w", encoding="utf-8") as f:
        for line in lines:  # sentencepiece reads lines: no line breaks inside one
            f.write("".join(" " if c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029" else c for c in line) + "\n")
    prefix = os.path.join(work, "bytes" if byte_fallback else "plain")
    sentencepiece.SentencePieceTrainer.train(input=text, model_prefix=prefix, vocab_size=1500, model_type="unigram",
                                             character_coverage=0.9995, normalization_rule_name="nmt_nfkc", pad_id=0,
                                             eos_id=1, unk_id=2, bos_id=-1, byte_fallback=byte_fallback, minloglevel=2,
                                             seed_sentencepiece_size=100000, num_threads=1)
    tok = SentencePieceUnigramTokenizer.from_spm(prefix + ".model")._tokenizer
    tok.add_special_tokens(["<pad>", "</s>", "<unk>"])
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)])
    if byte_fallback:
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    return tok


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/PolyPEFTTests/Resources/tokenizers"
    os.makedirs(out, exist_ok=True)
    rng = random.Random(SEED)
    corpus = [random_line(rng) for _ in range(LINES)]
    training = [random_line(random.Random(SEED + 1 + i)) for i in range(3000)]  # the vocabulary comes from other lines
    with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for line in corpus:
            f.write(json.dumps({"text": line}, ensure_ascii=True) + "\n")
    expected = []
    import tempfile
    work = tempfile.mkdtemp()
    for name, make in [("wordpiece_uncased", lambda: bert_tokenizer(True, training)),
                       ("wordpiece_cased", lambda: bert_tokenizer(False, training)),
                       ("unigram_t5", lambda: unigram_tokenizer(work, training, False)),
                       ("unigram_bytes", lambda: unigram_tokenizer(work, training, True))]:
        tok = make()
        tok.save(os.path.join(out, name + ".json"))
        tok.no_padding()
        tok.no_truncation()
        for i, line in enumerate(corpus):
            e = tok.encode(line)
            expected.append({"tokenizer": name, "line": i, "ids": e.ids, "type_ids": e.type_ids,
                             "special": e.special_tokens_mask, "decoded": tok.decode(e.ids)})
        # Pairs, truncation and padding on a few lines.
        for i in range(0, 200, 7):
            a, b = corpus[i], corpus[i + 1]
            for max_length, strategy in [(None, None), (16, "longest_first"), (9, "longest_first"), (24, "only_second")]:
                tok.no_truncation()
                if max_length:
                    tok.enable_truncation(max_length, strategy=strategy)
                try:
                    e = tok.encode(a, b)
                except Exception as err:  # only_second on a too-short second sequence
                    expected.append({"tokenizer": name, "line": i, "pair": i + 1, "max_length": max_length,
                                     "strategy": strategy, "error": str(err)})
                    continue
                expected.append({"tokenizer": name, "line": i, "pair": i + 1, "max_length": max_length, "strategy": strategy,
                                 "ids": e.ids, "type_ids": e.type_ids, "special": e.special_tokens_mask})
        tok.no_truncation()
        tok.enable_padding(pad_id=0, pad_token="[PAD]", pad_to_multiple_of=8)
        batch = tok.encode_batch(corpus[:12])
        expected.append({"tokenizer": name, "batch": list(range(12)), "pad_to_multiple_of": 8,
                         "ids": [e.ids for e in batch], "attention_mask": [e.attention_mask for e in batch]})
    with open(os.path.join(out, "expected.jsonl"), "w", encoding="utf-8") as f:
        for e in expected:
            f.write(json.dumps(e, ensure_ascii=True) + "\n")
    print(f"wrote {len(corpus)} lines, {len(expected)} expected records into {out}")


if __name__ == "__main__":
    main()
