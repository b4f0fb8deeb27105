#!/usr/bin/env python3
"""Mutation fuzzer for the files `polyctl` reads back (issue 19, item 6). Python 3 standard library only.

It trains a few tiny seed runs with a built `polyctl`, writes seed data files and infer inputs, then makes mutants
of every file that `inspect`, `eval`, `infer` and `train --resume` / `train --data` read: safetensors files (adapter,
base model, optimizer state, infer inputs), adapter_config.json, polypeft_run.json, trainer_state.json, and JSONL /
CSV data. Each mutant runs through the commands that read it, each command on a fresh copy, and each run is
classified:

    clean    exit 1 or 64 and stderr starts with "error: "
    success  exit 0 (infer, and any --json output, must be valid JSON, one value per line for infer)
    crash    killed by a signal, any other exit code, exit 1/64 without "error: ", or exit 0 with invalid JSON
    hang     no exit within the timeout

Mutant i is built from `random.Random(f"{seed}/{i}")` and the seed files alone, so a run is deterministic for its
seed and any mutant can be rerun by itself (`--only i`). Every crash and hang leaves a reproducer (the mutated files,
the command line, its output) in the output folder. The exit status is 1 when any run crashed or hung.

    python3 Benchmarks/fuzz/fuzz.py --quick                  # 200 mutants
    python3 Benchmarks/fuzz/fuzz.py --long --seed 7          # 10,000 mutants
"""

import argparse
import copy
import json
import math
import os
import random
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# ----------------------------------------------------------------------------------------------------------------------
# Interesting values
# ----------------------------------------------------------------------------------------------------------------------

#: Integers at the edges of Int32, Int64, UInt64, Double's exact range, and merely large.
BIG_INTS = [2**31 - 1, 2**31, 2**32, 2**32 + 1, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 2**64 + 1, 10**6, 10**9,
            10**12, 10**30, 10**400]
SMALL_INTS = [0, 1, 2, 3, -1, -2, -2**31, -2**63, -2**64]

#: JSON numbers written verbatim (Python's json module cannot spell them): overflowing, odd and invalid forms.
RAW_NUMBERS = ["1e400", "-1e400", "1e-400", "-0", "0e0", "1E+2", "00", "-", "1.", ".5", "+1", "0x10", "NaN",
               "Infinity", "-Infinity", "3.4028235e38", "3.5e38", "1e39", "4.9e-324"]

#: Strings: empty, long, non-ASCII, control characters, lookalikes of real values.
STRINGS = ["", " ", "x", "poly", "POLY", "LORA", "IA3", "lora", "outputs", "parameters", "fc1", "fc3", "task00",
           "\u00e9t\u00e9", "\U0001F642", "\u0000", "a\nb", "\ud7ff", "../../etc", "x" * 100_000]

#: Every JSON kind, for swaps.
KINDS = [None, True, False, [], {}, [1, 2], {"a": 1}, [[]], ["fc1", 1]]

RAW_MARK = "@@raw@@:"   # printable, so json.dumps keeps it as is inside its quotes


def raw(token):
    """A placeholder that `dump_json` replaces by `token` unquoted."""
    return RAW_MARK + token


def interesting(rng):
    """One interesting JSON value (a copy: the mutants edit what they are given)."""
    pool = rng.choice([BIG_INTS, SMALL_INTS, RAW_NUMBERS, STRINGS, KINDS, [1.5, -0.0, 1e308, -1e308, 5e-324, 0.1]])
    value = rng.choice(pool)
    return raw(value) if pool is RAW_NUMBERS else copy.deepcopy(value)


def dump_json(value, indent=None):
    """JSON text of `value`, placeholders from `raw` written verbatim, NaN/Infinity as Python writes them."""
    text = json.dumps(value, indent=indent, allow_nan=True, ensure_ascii=False)
    while RAW_MARK in text:
        start = text.index('"' + RAW_MARK)
        end = text.index('"', start + 1)
        text = text[:start] + text[start + 1 + len(RAW_MARK):end] + text[end + 1:]
    return text


# ----------------------------------------------------------------------------------------------------------------------
# Byte-level mutations (any file)
# ----------------------------------------------------------------------------------------------------------------------

INVALID_UTF8 = [b"\xff", b"\xfe\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xc3"]


def flip_bits(rng, data, start=0, end=None):
    """Flips 1-8 random bits in `data[start:end]`."""
    out = bytearray(data)
    end = len(out) if end is None else min(end, len(out))
    if end <= start:
        return bytes(out), "no bits to flip"
    flips = [(rng.randrange(start, end), rng.randrange(8)) for _ in range(rng.randint(1, 8))]
    for pos, bit in flips:
        out[pos] ^= 1 << bit
    return bytes(out), "flipped bits at " + ", ".join(f"{p}.{b}" for p, b in flips)


def mutate_bytes(rng, data):
    """One byte-level mutation of a whole file; returns (bytes, description)."""
    op = rng.choice(["truncate", "flip", "utf8", "crlf", "bom", "nul", "append", "empty", "dup"])
    cut = rng.randrange(len(data) + 1) if data else 0
    if op == "truncate":
        return data[:cut], f"truncated to {cut} of {len(data)} bytes"
    if op == "flip":
        return flip_bits(rng, data)
    if op == "utf8":
        bad = rng.choice(INVALID_UTF8)
        return data[:cut] + bad + data[cut:], f"inserted invalid UTF-8 {bad!r} at byte {cut}"
    if op == "crlf":
        return data.replace(b"\n", b"\r\n"), "line ends as CRLF"
    if op == "bom":
        return b"\xef\xbb\xbf" + data, "UTF-8 byte-order mark prepended"
    if op == "nul":
        return data[:cut] + b"\x00" + data[cut:], f"NUL byte inserted at {cut}"
    if op == "append":
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        return data + junk, f"{len(junk)} random bytes appended"
    if op == "dup":
        return data + data, "file content doubled"
    return b"", "empty file"


# ----------------------------------------------------------------------------------------------------------------------
# JSON-document mutations
# ----------------------------------------------------------------------------------------------------------------------

def json_paths(value, prefix=()):
    """Every path (tuple of keys / indices) in `value`, the root `()` first."""
    paths = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            paths += json_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:64]):
            paths += json_paths(v, prefix + (i,))
    return paths


def get_path(doc, path):
    """The value at `path` in `doc`."""
    for key in path:
        doc = doc[key]
    return doc


def set_path(doc, path, new):
    """`doc` with the value at `path` replaced by `new` (the root itself for `()`)."""
    if not path:
        return new
    get_path(doc, path[:-1])[path[-1]] = new
    return doc


def nested(depth):
    """`[[[...]]]` nested `depth` deep, as a raw token (too deep for Python's own encoder)."""
    return raw("[" * depth + "]" * depth)


def swapped_kind(rng, value):
    """`value` as another JSON kind (`5` -> `"5"`, a list -> an object, ...)."""
    if isinstance(value, bool) or value is None:
        return rng.choice([0, 1, "true", []])
    if isinstance(value, (int, float)):
        return rng.choice([str(value), [value], {"value": value}, value != 0, float(value) + 0.5])
    if isinstance(value, str):
        return rng.choice([[value], {value: value}, len(value), None])
    if isinstance(value, list):
        return rng.choice([{str(i): v for i, v in enumerate(value)}, dump_json(value), len(value)])
    return rng.choice([list(value.values()), list(value.keys()), dump_json(value)])


def tweak_number(rng, value):
    """A nearby or scaled number."""
    return rng.choice([value + 1, value - 1, -value, value * 2, value * 1000, value * 10**12, 0])


def mutate_list(rng, value):
    """A list made empty, shorter, longer, repeated or reordered."""
    op = rng.choice(["empty", "drop", "repeat", "shuffle", "append"])
    if op == "empty" or not value:
        return [], "emptied"
    if op == "drop":
        i = rng.randrange(len(value))
        return value[:i] + value[i + 1:], f"element {i} removed"
    if op == "repeat":
        times = rng.choice([2, 10, 1000, 20_000])
        return value * times, f"repeated x{times}"
    if op == "shuffle":
        out = list(value)
        rng.shuffle(out)
        return out, "shuffled"
    extra = interesting(rng)
    return value + [extra], f"appended {short(extra)}"


def short(value):
    """A value for a description line, cut to 60 characters."""
    text = value if isinstance(value, str) and value.startswith(RAW_MARK) else None
    text = text[len(RAW_MARK):] if text else dump_json(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: Values tried for particular keys (besides the general ones): names the readers know, paths, odd spellings.
HINTS = {
    "peft_type": ["POLY", "LORA", "IA3", "PREFIX_TUNING", "ADALORA", "poly", ""],
    "poly_type": ["poly", "mhr", "other"],
    "polypeft_mixing": ["outputs", "parameters", "both", None],
    "mixing": ["outputs", "parameters", "both"],
    "method": ["poly", "mhr", "lora", "ia3", "dora", "prefix", ""],
    "target_modules": [["fc1"], ["fc2"], ["fc3"], [], "fc1", "all-linear", ".*", ["fc1", "fc1"], "fc[12]", ["fc1", 2]],
    "feedforward_modules": [["fc1"], ["fc2"], ["fc3"], [], "fc1", ".*", ["fc1", "fc2", "fc2"]],
    "modules_to_save": [["fc1"], ["fc2"], ["fc3"], "fc1", []],
    "unknown_tasks": ["error", "uniform", "other"],
    "polypeft_routing": [{"straight_through": True, "shared_skill": True}, {"temperature": 0}, {"temperature": -1},
                         {"unknown_tasks": "uniform"}, {"unknown_tasks": 3}, {"bogus": 1}],
    "dataPath": ["/nonexistent/x.jsonl", "", ".", "run", "data.jsonl", "data.csv", "/dev/null", "/dev/zero",
                 "run/adapter_config.json", "x.txt", "run/base_model.safetensors.csv"],
    "taskNames": [[], ["a"], ["a", "a"], ["task00"] * 18, [""] * 18, [str(i) for i in range(18)]],
    "optimizerKind": ["adamw", "adam", "sgd", ""],
    "state": [[0, 0, 0, 0], [1, 2, 3], [2**64 - 1] * 4, [-1, 0, 0, 0], [1, 2, 3, 4, 5]],
    "format": [0, 2, -1, "1"],
    "step": [-1, -5, 31, 2**63 - 1, -2**63],
    "optimizerSteps": [-1, 11, 10**9, 2**63 - 1, -2**63],
    "warmupSteps": [-1, 31, 2**63 - 1, -2**63],
    "evalEvery": [-1, 0, 1, -2**63],
    "batchSize": [0, -1, 1_000_001, 2**63 - 1],
    "clipNorm": [-1, 0, raw("NaN"), raw("1e400"), 1e-45],
    "hiddenDim": [0, -1, 4097, 2**31, 10**9],
}

#: Keys whose every value is taken from this list: a valid but large value would make polyctl work for a long
#: time as asked (eval trains its baseline for the run's steps), which is no defect; values outside the CLI's range
#: must be refused.
EXCLUSIVE = {"steps": [-1, 0, 1, 5, 31, 10_000_001, 2**31, 2**62, 2**63 - 1, 2**63, raw("1e400"), 1.5, "30", None]}


def replacement(rng, key, value, op):
    """The new value for op `interesting` / `swap` / `nest` / `tweak` at a key."""
    if key in EXCLUSIVE:
        return rng.choice(EXCLUSIVE[key])
    if op == "interesting" and key in HINTS and rng.random() < 0.5:
        return copy.deepcopy(rng.choice(HINTS[key]))
    if op == "interesting" and type(value) is int and rng.random() < 0.5:
        return rng.choice(BIG_INTS + SMALL_INTS + [raw("1e400"), 1.5])
    return {"interesting": lambda: interesting(rng), "swap": lambda: swapped_kind(rng, value),
            "nest": lambda: nested(rng.choice([64, 512, 1000, 10_000, 100_000])),
            "tweak": lambda: tweak_number(rng, value)}[op]()


def mutate_value(rng, doc, path, known_keys):
    """One mutation of the value at `path`; returns (new doc, description)."""
    value = get_path(doc, path)
    where = "/".join(map(str, path)) or "(root)"
    ops = ["interesting", "interesting", "swap", "nest"]
    if path:
        ops.append("delete")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ops += ["tweak", "tweak"]
    if isinstance(value, list):
        ops += ["list", "list"]
    if isinstance(value, dict):
        ops += ["add"]
    op = rng.choice(ops)
    if op == "delete":
        parent = get_path(doc, path[:-1])
        del parent[path[-1]]
        return doc, f"{where} removed"
    if op == "list":
        new, what = mutate_list(rng, value)
        return set_path(doc, path, new), f"{where} {what}"
    if op == "add":
        key = rng.choice(sorted(known_keys) + ["extra", "", "__proto__", "x" * 1000])
        new = replacement(rng, key, None, "interesting")
        value[key] = new
        return doc, f"{where} gained key {short(key)} = {short(new)}"
    new = replacement(rng, path[-1] if path else None, value, op)
    return set_path(doc, path, new), f"{where} = {short(new)}"


def pick_path(rng, doc, known_keys):
    """A path in `doc`: mostly one ending in a key the reader knows, else any."""
    paths = json_paths(doc)
    known = [p for p in paths if p and p[-1] in known_keys]
    return rng.choice(known) if known and rng.random() < 0.65 else rng.choice(paths)


def duplicate_key(text, doc):
    """The JSON text with its first top-level key repeated at the start of the object (strict parsers refuse it)."""
    if not isinstance(doc, dict) or not doc or not text.startswith("{"):
        return text, "no key to duplicate"
    key = next(iter(doc))
    return "{" + dump_json(key) + ": 1, " + text[1:], f"key {short(key)} given twice"


def mutate_json_file(rng, data, known_keys, indent):
    """Mutates a JSON file: 1-3 structural edits, or a text edit (duplicate key, raw bytes)."""
    doc = json.loads(data)
    if rng.random() < 0.2:
        if rng.random() < 0.3:
            text, what = duplicate_key(data.decode(), doc)
            return text.encode(), what
        return mutate_bytes(rng, data)
    notes = []
    for _ in range(rng.choice([1, 1, 1, 1, 2, 3])):
        doc, note = mutate_value(rng, doc, pick_path(rng, doc, known_keys), known_keys)
        notes.append(note)
        if not isinstance(doc, (dict, list)):
            break
    return dump_json(doc, indent).encode(), "; ".join(notes)


# ----------------------------------------------------------------------------------------------------------------------
# Safetensors
# ----------------------------------------------------------------------------------------------------------------------

DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass
class Entry:
    """One tensor of a safetensors file: dtype, shape, raw little-endian bytes."""
    name: str
    dtype: str
    shape: list
    data: bytes


def read_safetensors(data):
    """(metadata, entries in file order) of a well-formed safetensors buffer."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", None)
    base = 8 + n
    entries = [Entry(k, v["dtype"], v["shape"], data[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
               for k, v in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])]
    return metadata, entries


def header_of(entries, metadata):
    """The header object (offsets computed in entry order)."""
    header = {} if metadata is None else {"__metadata__": metadata}
    offset = 0
    for e in entries:
        header[e.name] = {"dtype": e.dtype, "shape": e.shape, "data_offsets": [offset, offset + len(e.data)]}
        offset += len(e.data)
    return header


def assemble(header, payload):
    """Length field + header JSON (padded with spaces to 8 bytes) + payload; the header may be anything."""
    text = dump_json(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + payload


def write_safetensors(entries, metadata):
    """A well-formed safetensors buffer."""
    return assemble(header_of(entries, metadata), b"".join(e.data for e in entries))


def floats_of(entry):
    """The values of an F32 entry."""
    return list(struct.unpack(f"<{len(entry.data) // 4}f", entry.data))


def f32_bytes(values):
    """Little-endian F32 bytes of `values`."""
    return struct.pack(f"<{len(values)}f", *values)


def element_count(shape):
    """Elements of a tensor of `shape` (1 for a scalar)."""
    return math.prod(shape)


def reshapes(shape):
    """Shapes with the same element count: flattened, transposed, with unit dims added or split dims."""
    n = element_count(shape)
    out = [[n], [1, n], [n, 1], list(reversed(shape)), shape + [1], [1] + shape]
    out += [shape[:i] + [shape[i] // k, k] + shape[i + 1:] for i in range(len(shape)) for k in (2, 4)
            if shape[i] % k == 0 and shape[i] > k]
    if n == 1:
        out.append([])
    return [s for s in out if s != shape]


def retyped(rng, e):
    """The entry's bytes reinterpreted as another dtype (shape adjusted so the byte count still matches)."""
    size = DTYPE_SIZES[e.dtype]
    options = [d for d in DTYPE_SIZES if d != e.dtype]
    dtype = rng.choice(options)
    new_size = DTYPE_SIZES[dtype]
    last = e.shape[-1] if e.shape else 1
    if (last * size) % new_size:
        return None
    shape = (e.shape[:-1] or []) + [last * size // new_size]
    return Entry(e.name, dtype, shape, e.data)


def converted(rng, e):
    """An F32 entry converted by value to F64 (maybe with values beyond Float's range), F16 or BF16."""
    if e.dtype != "F32":
        return None, ""
    values = floats_of(e)
    dtype = rng.choice(["F64", "F16", "BF16"])
    if dtype == "F64":
        for i in rng.sample(range(len(values)), min(len(values), rng.randint(0, 3))):
            values[i] = rng.choice([1e39, -1e39, 1e300, 4e38, 5e-324])
        data = struct.pack(f"<{len(values)}d", *values)
    elif dtype == "F16":
        data = b"".join(struct.pack("<e", max(-65504.0, min(65504.0, v))) for v in values)
    else:
        data = b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in values)
    return Entry(e.name, dtype, e.shape, data), f"converted to {dtype}"


SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 3.4028235e38, -3.4028235e38, 1e-45, -0.0, 1e30, 1e-30, 0.0, 65504.0]


def with_specials(rng, e):
    """An F32 entry with some (or all) elements set to NaN, an infinity, Float's extremes or zero."""
    if e.dtype != "F32" or not e.data:
        return None, ""
    values = floats_of(e)
    special = rng.choice(SPECIAL_FLOATS)
    count = len(values) if rng.random() < 0.3 else rng.randint(1, 3)
    for i in rng.sample(range(len(values)), min(count, len(values))):
        values[i] = special
    return Entry(e.name, e.dtype, e.shape, f32_bytes(values)), f"{min(count, len(values))} value(s) = {special}"


RENAMES = [("fc1", "fc2"), ("fc2", "fc1"), ("fc1", "fc3"), ("lora_A", "lora_B"), ("lora_B", "lora_A"),
           ("poly_lora_A", "poly_lora_B"), ("module_logits", "logits"), ("weight", "bias"), ("ia3_l", "ia3_m"),
           ("base_model.model.", ""), ("#m", "#v"), ("adapter/", "router/")]


def renamed(rng, name):
    """A plausible or odd other name for a tensor."""
    swaps = [(a, b) for a, b in RENAMES if a in name]
    if swaps and rng.random() < 0.7:
        a, b = rng.choice(swaps)
        return name.replace(a, b, 1)
    return rng.choice(["", " ", name + "x", name.upper(), "x", "__metadata__", "\U0001F642", name * 50])


def edited_entry(rng, e, op):
    """A changed copy of entry `e` by `op` and its description; (None, "") when `op` does not apply to `e`."""
    if op == "reshape":
        shapes = reshapes(e.shape)
        new = Entry(e.name, e.dtype, rng.choice(shapes), e.data) if shapes else None
        return new, f"reshaped {e.shape} -> {new.shape}" if new else ""
    if op == "retype":
        new = retyped(rng, e)
        return new, f"reinterpreted {e.dtype} {e.shape} as {new.dtype} {new.shape}" if new else ""
    if op == "convert":
        return converted(rng, e)
    if op == "specials":
        return with_specials(rng, e)
    if op == "rename":
        new = Entry(renamed(rng, e.name), e.dtype, e.shape, e.data)
        return new, f"renamed to {new.name[:60]!r}"
    new = Entry(e.name, e.dtype, [0] + e.shape[1:] if e.shape else [0], b"")
    return new, f"emptied to shape {new.shape}"


def mutate_entries(rng, metadata, entries):
    """A well-formed file with changed tensors: reshaped, retyped, renamed, missing, extra, special values,
    empty, odd metadata. Returns (bytes, description) or None when the chosen edit does not apply."""
    i = rng.randrange(len(entries))
    e = entries[i]
    names = {x.name for x in entries}
    op = rng.choice(["reshape", "retype", "convert", "specials", "specials", "drop", "extra", "rename", "empty",
                     "metadata"])
    if op == "drop":
        return write_safetensors(entries[:i] + entries[i + 1:], metadata), f"tensor {e.name!r} removed"
    if op == "extra":
        extra = Entry(renamed(rng, e.name), e.dtype, e.shape, e.data)
        return None if extra.name in names else \
            (write_safetensors(entries + [extra], metadata), f"extra tensor {extra.name[:60]!r}")
    if op == "metadata":
        meta = interesting(rng) if rng.random() < 0.5 else {"format": interesting(rng)}
        payload = b"".join(x.data for x in entries)
        return assemble({"__metadata__": meta, **header_of(entries, None)}, payload), f"__metadata__ = {short(meta)}"
    new, what = edited_entry(rng, e, op)
    if new is None or (new.name != e.name and new.name in names):
        return None
    return write_safetensors(entries[:i] + [new] + entries[i + 1:], metadata), f"tensor {e.name!r} {what}"


def bad_shape(rng, shape):
    """A shape with a huge, negative or non-integer extent, or an odd shape as a whole."""
    shape = list(shape)
    if shape and rng.random() < 0.7:
        shape[rng.randrange(len(shape))] = rng.choice(BIG_INTS + SMALL_INTS + [1.5, "2", None, raw("1e400")])
        return shape
    return rng.choice([[], [2**31, 2**31, 2**31], [1] * 1000, [2**62, 4], [10**6, 10**6], "shape", None])


def bad_offsets(rng, offsets):
    """data_offsets with one end moved by one, swapped, huge, negative or not an integer, or the pair malformed."""
    offsets = list(offsets)
    k = rng.randrange(2)
    offsets[k] = rng.choice([offsets[k] + 1, offsets[k] - 1, offsets[1 - k]] + BIG_INTS + SMALL_INTS + [1.5, "0", None])
    if rng.random() < 0.2:
        offsets = rng.choice([offsets[::-1], offsets + [0], offsets[:1], {}])
    return offsets


def mutate_header(rng, metadata, entries):
    """An inconsistent header (dtype, shape, offsets, fields of one entry) over the unchanged data section."""
    header = header_of(entries, metadata)
    payload = b"".join(e.data for e in entries)
    name = rng.choice([e.name for e in entries])
    fields = header[name]
    op = rng.choice(["dtype", "shape", "shape", "data_offsets", "data_offsets", "drop", "extra", "entry"])
    if op == "dtype":
        fields["dtype"] = rng.choice(list(DTYPE_SIZES) + ["F8_E4M3", "Q4", "f32", "", 4, None])
    elif op == "shape":
        fields["shape"] = bad_shape(rng, fields["shape"])
    elif op == "data_offsets":
        fields["data_offsets"] = bad_offsets(rng, fields["data_offsets"])
    elif op == "drop":
        op = rng.choice(list(fields))
        del fields[op]
        return assemble(header, payload), f"header of {name!r}: field {op} removed"
    elif op == "extra":
        fields["extra"] = interesting(rng)
    else:
        header[name] = interesting(rng)
        return assemble(header, payload), f"header of {name!r}: entry = {short(header[name])}"
    return assemble(header, payload), f"header of {name!r}: {op} = {short(fields[op])}"


def mutate_length_field(rng, data):
    """The 8-byte header length replaced by an edge value."""
    (n,) = struct.unpack("<Q", data[:8])
    value = rng.choice([0, 1, 2, 7, 8, n - 1, n + 1, n + 8, len(data), len(data) - 8, 100_000_000, 100_000_001,
                        2**31, 2**32, 2**63, 2**64 - 1])
    return struct.pack("<Q", value % 2**64) + data[8:], f"header length field = {value} (was {n})"


def mutate_safetensors(rng, data):
    """One mutation of a safetensors file: a tensor-level edit (well-formed file), a header edit, the length field,
    or raw bytes (truncation, bit flips)."""
    metadata, entries = read_safetensors(data)
    (n,) = struct.unpack("<Q", data[:8])
    while True:
        op = rng.choice(["entries", "entries", "entries", "header", "header", "length", "flip-header", "raw"])
        if op == "entries":
            result = mutate_entries(rng, metadata, entries)
            if result:
                return result
        elif op == "header":
            return mutate_header(rng, metadata, entries)
        elif op == "length":
            return mutate_length_field(rng, data)
        elif op == "flip-header":
            return flip_bits(rng, data, 0, 8 + n)
        else:
            return mutate_bytes(rng, data)


# ----------------------------------------------------------------------------------------------------------------------
# Data files (JSONL, CSV) and infer inputs
# ----------------------------------------------------------------------------------------------------------------------

GARBAGE_LINES = ["{", "}", "[]", "null", "1", '"x"', "{}", '{"input": [1], "target": [1], "task": "t", "task": "u"}',
                 '{"input": [1,], "target": [1], "task": "t"}', "\t", "   ", "not json", "\u00a0", "{\"input\":"]


def mutate_lines(rng, lines, edit_line):
    """A line-level edit of a text file: drop, duplicate, swap, insert garbage, or `edit_line` one line."""
    body = [i for i, line in enumerate(lines) if line.strip()]
    i = rng.choice(body) if body else 0
    op = rng.choice(["edit", "edit", "edit", "drop", "dup", "swap", "garbage"])
    if op == "edit" and body:
        new, what = edit_line(rng, lines[i], i)
        return lines[:i] + [new] + lines[i + 1:], f"line {i + 1}: {what}"
    if op == "drop" and body:
        return lines[:i] + lines[i + 1:], f"line {i + 1} removed"
    if op == "dup" and body:
        times = rng.choice([1, 10, 1000])
        return lines[:i] + [lines[i]] * (times + 1) + lines[i + 1:], f"line {i + 1} repeated x{times}"
    if op == "swap" and len(body) > 1:
        j = rng.choice(body)
        lines = list(lines)
        lines[i], lines[j] = lines[j], lines[i]
        return lines, f"lines {i + 1} and {j + 1} swapped"
    junk = rng.choice(GARBAGE_LINES)
    return lines[:i] + [junk] + lines[i:], f"line {short(junk)} inserted before line {i + 1}"


JSONL_KEYS = {"input", "target", "task"}


def edit_jsonl_line(rng, line, _index):
    """One JSON edit of a JSONL line, mostly on input / target / task."""
    text, what = mutate_json_file(rng, line.encode(), JSONL_KEYS, None)
    return text.decode(errors="surrogateescape"), what


def jsonl_rows(lines):
    """The JSON objects of the non-blank lines."""
    return [json.loads(line) for line in lines if line.strip()]


def mutate_jsonl_all(rng, lines):
    """An edit of every row at once: widths (coherent or huge), task names (many, one, long, odd)."""
    rows = jsonl_rows(lines)
    op = rng.choice(["width", "huge", "tasks", "taskname"])
    if op == "width":
        key = rng.choice([k for k in ("input", "target") if k in rows[0]])
        width = rng.choice([1, len(rows[0][key]) + 1, 2000])
        for r in rows:
            r[key] = (r[key] * width)[:width]
        what = f"every {key} has {width} values"
    elif op == "huge":
        key = rng.choice([k for k in ("input", "target") if k in rows[0]])
        r = rng.choice(rows)
        r[key] = r[key] * (100_000 // max(1, len(r[key])))
        what = f"one {key} has {len(r[key])} values"
    elif op == "tasks":
        names = rng.choice(["unique", "one", "numbers"])
        for k, r in enumerate(rows):
            r["task"] = {"unique": f"t{k}", "one": "only", "numbers": k % 3}[names]
        what = f"task names: {names}"
    else:
        name = rng.choice(["x" * 100_000, "", " ", "\u0000", "a\nb", "\U0001F642", "task00 "])
        for r in rows:
            if "task" in r:
                r["task"] = name
        what = f"every task = {short(name)}"
    return [dump_json(r) for r in rows], what


def mutate_text_lines(rng, data, edit_all, edit_line):
    """One mutation of a line-based text file: its bytes damaged, every line edited at once, or some lines edited."""
    choice = rng.random()
    if choice < 0.15:
        return mutate_bytes(rng, data)
    lines = data.decode().split("\n")
    if choice < 0.3:
        lines, what = edit_all(rng, lines)
    else:
        lines, what = mutate_lines(rng, lines, edit_line)
    return "\n".join(lines).encode(errors="surrogateescape"), what


def mutate_jsonl(rng, data):
    """One mutation of a JSONL file (data or infer inputs)."""
    return mutate_text_lines(rng, data, mutate_jsonl_all, edit_jsonl_line)


CSV_VALUES = ["", "nan", "NaN", "inf", "-inf", "1e39", "1e400", "0x1p3", " 1 ", "1,5", '"1"', '"', '""', 'a"b',
              '"a\nb"', "\u00a0", "1e-50", "-0", "+1", "1_000", "3.4028235e38", "x" * 10_000, '"unterminated']
CSV_COLUMNS = ["x00", "x01", "X0", "task ", "tasks", "", "y-1", "x99999999999999999999", "x6", "y9", '"task"',
               "task", "x0", "y0"]


def edit_csv_line(rng, line, index):
    """One edit of a CSV record: a field changed, added or removed (the header's names too)."""
    fields = line.split(",")
    k = rng.randrange(len(fields))
    op = rng.choice(["value", "value", "add", "remove"])
    if op == "remove" and len(fields) > 1:
        return ",".join(fields[:k] + fields[k + 1:]), f"field {k} removed"
    new = rng.choice(CSV_COLUMNS if index == 0 else CSV_VALUES)
    if op == "add":
        return ",".join(fields[:k] + [new] + fields[k:]), f"field {short(new)} inserted at {k}"
    return ",".join(fields[:k] + [new] + fields[k + 1:]), f"field {k} = {short(new)}"


def mutate_csv_all(rng, lines):
    """An edit of every record: a column added, dropped or moved everywhere, many tasks, very wide rows."""
    rows = [line.split(",") for line in lines if line]
    op = rng.choice(["add", "drop", "move", "tasks", "wide"])
    k = rng.randrange(len(rows[0]))
    width = sum(1 for c in rows[0] if c.startswith("x"))
    if op == "add":
        rows = [rows[0] + [f"x{width}"]] + [r + ["0.25"] for r in rows[1:]]
        what = f"input column x{width} added to every record"
    elif op == "drop":
        rows = [r[:k] + r[k + 1:] for r in rows]
        what = f"column {k} dropped"
    elif op == "move":
        rows = [r[k:] + r[:k] for r in rows]
        what = f"columns rotated by {k}"
    elif op == "tasks":
        rows = [rows[0]] + [[f"t{n}"] + r[1:] for n, r in enumerate(rows[1:])]
        what = "every record its own task"
    else:
        extra = 20_000
        rows = [rows[0] + [f"x{width + j}" for j in range(extra)]] + [r + ["0.5"] * extra for r in rows[1:]]
        what = f"{extra} more input columns"
    return [",".join(r) for r in rows] + [""], what


def mutate_csv(rng, data):
    """One mutation of a CSV data file."""
    return mutate_text_lines(rng, data, mutate_csv_all, edit_csv_line)


# ----------------------------------------------------------------------------------------------------------------------
# Seed files
# ----------------------------------------------------------------------------------------------------------------------

TINY = ["--steps", "30", "--batch-size", "32", "--eval-every", "10", "--no-baseline", "--quiet"]
DATA_TASKS = ["alpha", "beta", "gamma"]
DATA_WIDTH, DATA_TARGETS, DATA_ROWS = 6, 2, 60


@dataclass
class SeedRun:
    """A run folder trained once by `polyctl train` and copied into every mutant that needs it."""
    name: str
    args: list
    data: str = None          # the data file the run trains on (kept beside the run folder)
    tasks: list = field(default_factory=list)
    routed: bool = False
    width: int = 0            # input width of the base network


def seed_runs():
    """The seed runs: every method; some stopped early (so --resume trains), two on data files."""
    return [
        SeedRun("poly", []),
        SeedRun("poly-stopped", ["--stop-after", "10"]),
        SeedRun("mhr-parameters", ["--method", "mhr", "--mixing", "parameters", "--stop-after", "10"]),
        SeedRun("lora", ["--method", "lora"]),
        SeedRun("ia3", ["--method", "ia3", "--feedforward", "both", "--stop-after", "10"]),
        SeedRun("dora", ["--method", "dora", "--stop-after", "10"]),
        SeedRun("data-jsonl", ["--data", "data.jsonl", "--stop-after", "10"], data="data.jsonl"),
        SeedRun("data-csv", ["--data", "data.csv", "--method", "lora", "--stop-after", "10"], data="data.csv"),
    ]


def write_seed_data(folder, rng):
    """data.jsonl and data.csv with the same samples: three tasks, 6 inputs, 2 targets."""
    rows = []
    for k in range(DATA_ROWS):
        x = [round(rng.uniform(-1, 1), 4) for _ in range(DATA_WIDTH)]
        task = k % len(DATA_TASKS)
        y = [round(sum(x[j] * (1 + task) for j in range(t, DATA_WIDTH, 2)), 4) for t in range(DATA_TARGETS)]
        rows.append((DATA_TASKS[task], x, y))
    jsonl = "".join(dump_json({"input": x, "target": y, "task": t}) + "\n" for t, x, y in rows)
    header = ["task"] + [f"x{j}" for j in range(DATA_WIDTH)] + [f"y{j}" for j in range(DATA_TARGETS)]
    csv = ",".join(header) + "\n" + "".join(",".join([t] + [str(v) for v in x + y]) + "\n" for t, x, y in rows)
    (folder / "data.jsonl").write_text(jsonl)
    (folder / "data.csv").write_text(csv)


def write_inputs(folder, width):
    """input.jsonl and input.safetensors (tensor "x" [3, width]) for infer."""
    folder.mkdir(parents=True)
    rows = [[round(math.sin(i * width + j) * 0.7, 4) for j in range(width)] for i in range(3)]
    (folder / "input.jsonl").write_text("".join(dump_json({"input": r}) + "\n" for r in rows))
    x = Entry("x", "F32", [3, width], f32_bytes([v for r in rows for v in r]))
    (folder / "input.safetensors").write_bytes(write_safetensors([x], {"format": "pt"}))


def train_seed(ctx, run):
    """Trains `run` into a fresh folder and reads back its task names, method and input width."""
    folder = ctx.seeds / "runs" / run.name
    args = ["train"] + TINY + run.args + ["--output", f"runs/{run.name}"]
    outcome = execute(ctx, args, ctx.seeds)
    if outcome.code != (130 if "--stop-after" in run.args else 0):
        sys.exit(f"fuzz.py: seed run {run.name} failed ({outcome.detail}): {outcome.stderr.decode(errors='replace')}")
    spec_path = folder / "polypeft_run.json"
    spec = json.loads(spec_path.read_text())
    if run.data:
        # Recorded as an absolute path; relative, it names the copy beside the run in each mutant.
        spec["dataPath"] = run.data
        spec_path.write_text(json.dumps(spec, indent=2))
    run.tasks, run.routed = spec["taskNames"], spec["method"] in ("poly", "mhr")
    _, entries = read_safetensors((folder / "base_model.safetensors").read_bytes())
    run.width = next(e.shape[1] for e in entries if e.name == "fc1.weight")


def make_seeds(ctx):
    """Data files, seed runs and infer inputs under WORKDIR/seeds."""
    shutil.rmtree(ctx.seeds, ignore_errors=True)
    (ctx.seeds / "runs").mkdir(parents=True)
    write_seed_data(ctx.seeds, random.Random(f"{ctx.seed}/data"))
    runs = seed_runs()
    for run in runs:
        train_seed(ctx, run)
    for width in sorted({r.width for r in runs}):
        write_inputs(ctx.seeds / f"inputs-{width}", width)
    return {r.name: r for r in runs}


def stage(ctx, run, dest):
    """A mutant's files before mutation: `run/`, the run's data file, `input.jsonl`, `input.safetensors`."""
    shutil.copytree(ctx.seeds / "runs" / run.name, dest / "run")
    if run.data:
        shutil.copy(ctx.seeds / run.data, dest / run.data)
    for name in ("input.jsonl", "input.safetensors"):
        shutil.copy(ctx.seeds / f"inputs-{run.width}" / name, dest / name)


# ----------------------------------------------------------------------------------------------------------------------
# Targets: what is mutated, and which commands read it
# ----------------------------------------------------------------------------------------------------------------------

TRAINING_KEYS = {"steps", "batchSize", "learningRate", "routerLearningRate", "weightDecay", "clipNorm", "warmupSteps",
                 "evalEvery", "seed"}
ADAPTER_KEYS = {"r", "n_tasks", "n_skills", "n_splits", "target_modules", "peft_type", "poly_type", "polypeft_mixing",
                "polypeft_routing", "lora_alpha", "lora_dropout", "use_dora", "feedforward_modules", "modules_to_save",
                "init_weights", "init_lora_weights", "init_ia3_weights", "layers_to_transform", "layers_pattern",
                "rank_pattern", "alpha_pattern", "fan_in_fan_out", "bias", "use_rslora", "task_type",
                "exclude_modules", "inference_mode", "straight_through", "shared_skill", "temperature",
                "unknown_tasks"}
RUN_KEYS = {"format", "method", "mixing", "skills", "splits", "rank", "dataPath", "dataSeed", "hiddenDim",
            "taskNames", "training", "feedforward"} | TRAINING_KEYS
#: The training settings in trainer_state.json must equal polypeft_run.json's: the "training" target edits both.
STATE_KEYS = {"step", "rng", "state", "lossHistory", "validationSteps", "validationLosses", "optimizerKind",
              "optimizerSteps"}


def inspect_cmd(rng, _run):
    """`inspect` of the run, plain, --json or --numbers."""
    return ["inspect", "run"] + rng.choice([[], ["--json"], ["--numbers"]])


def eval_cmd(rng, _run):
    """`eval` of the run with two shots, plain, --json or without few-shot adaptation."""
    return ["eval", "--adapter", "run", "--shots", "2"] + rng.choice([[], ["--json"], ["--no-fewshot"]])


def infer_cmd(rng, run, inputs=None):
    """`infer` of the run on `inputs` (else either input file), with a known or unknown task for routed runs."""
    args = ["infer", "--adapter", "run", "--input", inputs or rng.choice(["input.jsonl", "input.safetensors"])]
    if run.routed or rng.random() < 0.2:
        args += rng.choice([["--task", run.tasks[0]], ["--task", run.tasks[-1]],
                            ["--task", "nope", "--unknown-task", "uniform"]])
    return args


def resume_cmd(rng, _run):
    """A resume, quiet or with progress (plain or JSON lines), with or without the shared-LoRA baseline."""
    return (["train", "--resume", "run"] + rng.choice([["--quiet"], ["--json"], []])
            + (["--no-baseline"] if rng.random() < 0.7 else []))


def data_cmds(rng, run):
    """A fresh `train --data`, `eval` with `--data` and with the run's own data (the same file), and a resume."""
    method = rng.choice([[], ["--method", "lora"], ["--method", "ia3"], ["--method", "mhr"]])
    return [["train", "--data", run.data, "--steps", "5", "--batch-size", "8", "--eval-every", "0", "--no-baseline",
             "--quiet", "--output", "fresh"] + method,
            ["eval", "--adapter", "run", "--data", run.data, "--no-fewshot"],
            ["eval", "--adapter", "run"],
            resume_cmd(rng, run)]


def edit_file(path, mutate):
    """A mutation of the staged file `path` by `mutate(rng, bytes) -> (bytes, description)`."""
    def apply(rng, dest, run):
        file = dest / path.replace("{data}", run.data or "")
        data, what = mutate(rng, file.read_bytes())
        file.write_bytes(data)
        return f"{file.relative_to(dest)}: {what}"
    return apply


def json_mutation(keys, indent):
    """A `mutate(rng, bytes)` for JSON files whose reader knows `keys`, written back with `indent`."""
    return lambda rng, data: mutate_json_file(rng, data, keys, indent)


def mutate_training(rng, dest, _run):
    """The same training setting changed in polypeft_run.json and trainer_state.json (so they still agree)."""
    key = rng.choice(sorted(TRAINING_KEYS))
    files = [("run/polypeft_run.json", "training", 2), ("run/checkpoint/trainer_state.json", "configuration", None)]
    docs = [json.loads((dest / path).read_text()) for path, _, _ in files]
    value = replacement(rng, key, docs[0]["training"][key], rng.choice(["interesting", "interesting", "tweak"]))
    for (path, section, indent), doc in zip(files, docs):
        doc[section][key] = value
        (dest / path).write_text(dump_json(doc, indent))
    return f"training {key} = {short(value)} in polypeft_run.json and trainer_state.json"


@dataclass
class Target:
    """What a mutant changes (`mutate(rng, dest, run) -> description`) and the commands that read it."""
    name: str
    weight: int
    mutate: object
    commands: list
    runs: list = None         # seed runs it applies to (None: any)


TARGETS = [
    Target("adapter_model", 14, edit_file("run/adapter_model.safetensors", mutate_safetensors),
           [inspect_cmd, eval_cmd, infer_cmd]),
    Target("adapter_config", 14, edit_file("run/adapter_config.json", json_mutation(ADAPTER_KEYS, 2)),
           [inspect_cmd, eval_cmd, infer_cmd]),
    Target("polypeft_run", 12, edit_file("run/polypeft_run.json", json_mutation(RUN_KEYS, 2)),
           [inspect_cmd, eval_cmd, infer_cmd, resume_cmd]),
    Target("base_model", 8, edit_file("run/base_model.safetensors", mutate_safetensors), [eval_cmd, infer_cmd]),
    Target("ckpt_adapter", 6, edit_file("run/checkpoint/adapter_model.safetensors", mutate_safetensors), [resume_cmd]),
    Target("trainer_state", 8, edit_file("run/checkpoint/trainer_state.json", json_mutation(STATE_KEYS, None)),
           [resume_cmd]),
    Target("optimizer", 8, edit_file("run/checkpoint/optimizer.safetensors", mutate_safetensors), [resume_cmd]),
    Target("training", 4, mutate_training, [resume_cmd, eval_cmd]),
    Target("data_jsonl", 10, edit_file("{data}", mutate_jsonl), [data_cmds], ["data-jsonl"]),
    Target("data_csv", 8, edit_file("{data}", mutate_csv), [data_cmds], ["data-csv"]),
    Target("infer_jsonl", 5, edit_file("input.jsonl", mutate_jsonl),
           [lambda rng, run: infer_cmd(rng, run, "input.jsonl")]),
    Target("infer_safetensors", 5, edit_file("input.safetensors", mutate_safetensors),
           [lambda rng, run: infer_cmd(rng, run, "input.safetensors")]),
]


def commands_of(target, rng, run):
    """The command lines of a mutant (a command maker returns one argument list, `data_cmds` several)."""
    out = []
    for make in target.commands:
        made = make(rng, run)
        out += made if isinstance(made[0], list) else [made]
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Running and classifying
# ----------------------------------------------------------------------------------------------------------------------

@dataclass
class Context:
    polyctl: str
    seed: int
    timeout: float
    memory_mb: int
    workdir: Path
    out: Path
    seeds: Path = None
    runs: dict = None


@dataclass
class Outcome:
    """One polyctl run: exit code (None: timed out; negative: killed by that signal) and its class."""
    code: object
    stdout: bytes
    stderr: bytes
    seconds: float
    cls: str = ""
    detail: str = ""


DEFECTS = ("crash", "hang")
CLASSES = ("clean", "success", "crash", "hang")


def shell_line(ctx, args):
    """The command as a shell line: address-space limit, one kernel thread, polyctl and its arguments."""
    return (f"ulimit -v {ctx.memory_mb * 1024}; POLYPEFT_THREADS=1 exec \"${{POLYCTL:-polyctl}}\" "
            + " ".join(shlex.quote(a) for a in args))


def execute(ctx, args, cwd):
    """Runs polyctl in `cwd` under the memory limit, killing its process group at the timeout."""
    env = dict(os.environ, POLYPEFT_THREADS="1", POLYCTL=ctx.polyctl)
    start = time.monotonic()
    proc = subprocess.Popen(["/bin/sh", "-c", shell_line(ctx, args)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=ctx.timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    outcome = Outcome(code, out, err, time.monotonic() - start)
    outcome.cls, outcome.detail = classify(ctx, args, outcome)
    return outcome


def strict_json(text):
    """Parses JSON refusing NaN / Infinity (which are not JSON)."""
    def refuse(token):
        raise ValueError(f"non-JSON number {token}")
    return json.loads(text, parse_constant=refuse)


def output_problem(args, stdout):
    """Why the stdout of a successful run is not what it promises, or None. infer prints one JSON object per input
    ({"output": [numbers]}); train --json prints JSON lines; inspect / eval --json print one JSON document (Python
    style: NaN allowed)."""
    try:
        text = stdout.decode()
        if args[0] == "infer":
            lines = text.splitlines()
            if not lines:
                return "no output lines"
            for line in lines:
                value = strict_json(line)
                if not isinstance(value, dict) or not isinstance(value.get("output"), list):
                    return f"line {short(line)} is not {{\"output\": [...]}}"
        elif args[0] == "train" and "--json" in args:
            for line in text.splitlines():
                strict_json(line)
        elif "--json" in args:
            json.loads(text)
    except ValueError as e:
        return f"invalid JSON output ({e})"
    return None


def classify(ctx, args, o):
    """(class, detail) of one run."""
    if o.code is None:
        return "hang", f"no exit within {ctx.timeout:g} s"
    if o.code < 0:
        return "crash", f"killed by {signal.Signals(-o.code).name}"
    if o.code in (1, 64):
        if o.stderr.startswith(b"error: "):
            return "clean", f"exit {o.code}"
        return "crash", f"exit {o.code} without 'error: ' on stderr"
    if o.code == 0:
        problem = output_problem(args, o.stdout)
        return ("crash", f"exit 0 with {problem}") if problem else ("success", "exit 0")
    return "crash", f"exit {o.code}"


def command_name(args):
    """The command as the report groups it (`train --resume`, `train --data`, `eval`, ...)."""
    if args[0] == "train":
        return "train --resume" if "--resume" in args else "train --data"
    return args[0]


@dataclass
class Result:
    index: int
    target: str
    run: str
    command: str
    cls: str
    detail: str
    mutation: str
    reproducer: str = ""


def save_reproducer(ctx, index, k, files, mutation, args, outcome):
    """Keeps the mutated files, the command (command.sh runs it on a copy) and its output."""
    folder = ctx.out / f"{outcome.cls}-{index:06d}-{k}"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(files, folder / "files")
    script = ["#!/bin/sh",
              f"# polyctl fuzz reproducer: seed {ctx.seed}, mutant {index}, command {k}: "
              f"{outcome.cls} ({outcome.detail})",
              f"# mutation: {mutation}",
              "# Runs on a copy of files/ (train --resume writes into the run folder). POLYCTL= the binary.",
              'here=$(cd "$(dirname "$0")" && pwd)', "work=$(mktemp -d)", 'cp -R "$here/files/." "$work"',
              'cd "$work" || exit 2', f"({shell_line(ctx, args)})", 'status=$?', 'rm -rf "$work"', 'exit $status']
    (folder / "command.sh").write_text("\n".join(script) + "\n")
    (folder / "command.sh").chmod(0o755)
    (folder / "stdout.txt").write_bytes(outcome.stdout[:65536])
    (folder / "stderr.txt").write_bytes(outcome.stderr[:65536])
    return str(folder)


def pick_target(rng):
    """A target, drawn by the weights in `TARGETS`."""
    return rng.choices(TARGETS, weights=[t.weight for t in TARGETS])[0]


def run_mutant(ctx, index):
    """Builds mutant `index` from its own generator, runs each of its commands on a fresh copy, classifies them."""
    rng = random.Random(f"{ctx.seed}/{index}")
    target = pick_target(rng)
    run = ctx.runs[rng.choice(target.runs or sorted(ctx.runs))]
    base = ctx.workdir / "mutants" / f"{index:06d}"
    shutil.rmtree(base, ignore_errors=True)
    files = base / "files"
    stage(ctx, run, files)
    try:
        mutation = target.mutate(rng, files, run)
    except Exception as e:
        raise RuntimeError(f"fuzz.py: mutant {index} ({target.name} of {run.name}) could not be built") from e
    results = []
    for k, args in enumerate(commands_of(target, rng, run)):
        scratch = base / f"cmd{k}"
        shutil.copytree(files, scratch)
        outcome = execute(ctx, args, scratch)
        result = Result(index, target.name, run.name, command_name(args), outcome.cls, outcome.detail, mutation)
        if outcome.cls in DEFECTS:
            result.reproducer = save_reproducer(ctx, index, k, files, mutation, args, outcome)
        results.append(result)
        shutil.rmtree(scratch)
    shutil.rmtree(base)
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------------

def table(title, key, results):
    """Runs per class, grouped by `key(result)`, with a total row."""
    groups = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    head = [title, "mutants", "runs"] + list(CLASSES)
    rows = [[name, len({r.index for r in rs}), len(rs)] + [sum(r.cls == c for r in rs) for c in CLASSES]
            for name, rs in sorted(groups.items())]
    rows.append(["total", len({r.index for r in results}), len(results)]
                + [sum(r.cls == c for r in results) for c in CLASSES])
    widths = [max(len(str(row[i])) for row in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
             for row in [head] + rows]
    return "\n".join(lines)


def report(results, seconds, ctx, count):
    """Prints the tables, the per-class counts and every defect; returns the number of defective runs."""
    print()
    print(table("target", lambda r: r.target, results))
    print()
    print(table("command", lambda r: r.command, results))
    print()
    counts = {c: sum(r.cls == c for r in results) for c in CLASSES}
    print(f"seed {ctx.seed}: {count} mutants, {len(results)} runs in {seconds:.0f} s: "
          + ", ".join(f"{c} {n}" for c, n in counts.items()))
    defects = [r for r in results if r.cls in DEFECTS]
    for r in defects:
        print(f"{r.cls.upper()}: mutant {r.index} ({r.target} of {r.run}), {r.command}: {r.detail}\n"
              f"    mutation: {r.mutation}\n    reproducer: {r.reproducer}/command.sh")
    return len(defects)


# ----------------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------------

def parse_args(argv):
    """The command line; --quick / --long set the count when --count is not given."""
    p = argparse.ArgumentParser(description="Mutation fuzzer for polyctl's file readers.")
    p.add_argument("--polyctl", default=".build/release/polyctl", help="the polyctl binary (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mutants (default: %(default)s)")
    p.add_argument("--count", type=int, help="number of mutants (default: 1000; --quick 200, --long 10000)")
    p.add_argument("--quick", action="store_true", help="200 mutants")
    p.add_argument("--long", action="store_true", help="10,000 mutants (the issue's goal)")
    p.add_argument("--only", help="run only these mutants (comma-separated indices), e.g. to rerun a reproducer")
    p.add_argument("--timeout", type=float, default=60, help="seconds per polyctl run (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="parallel polyctl runs (default: %(default)s)")
    p.add_argument("--memory-mb", type=int, default=4096,
                   help="address-space limit of each run, so a huge allocation fails fast (default: %(default)s)")
    p.add_argument("--workdir", default=".build/fuzz", help="seeds and mutants go here (default: %(default)s)")
    p.add_argument("--out", help="reproducers of crashes and hangs (default: WORKDIR/reproducers)")
    args = p.parse_args(argv)
    if args.quick and args.long:
        p.error("--quick and --long exclude each other")
    args.count = args.count or (200 if args.quick else 10_000 if args.long else 1000)
    return args


def context(args):
    """The run's settings. WORKDIR's own folders (mutants, default reproducers) are emptied; an --out folder must be
    empty or absent."""
    polyctl = os.path.abspath(args.polyctl) if os.sep in args.polyctl else shutil.which(args.polyctl) or args.polyctl
    if not os.access(polyctl, os.X_OK):
        sys.exit(f"fuzz.py: no polyctl binary at {args.polyctl} (build it: swift build -c release --product polyctl)")
    workdir = Path(args.workdir).resolve()
    ctx = Context(polyctl, args.seed, args.timeout, args.memory_mb, workdir,
                  Path(args.out).resolve() if args.out else workdir / "reproducers", seeds=workdir / "seeds")
    for folder in (workdir / "mutants", workdir / "reproducers"):
        shutil.rmtree(folder, ignore_errors=True)
    if ctx.out.exists() and any(ctx.out.iterdir()):
        sys.exit(f"fuzz.py: --out {ctx.out} is not empty")
    ctx.out.mkdir(parents=True, exist_ok=True)
    return ctx


def main(argv):
    """Seeds, mutants in parallel (results in mutant order), the report; 1 when anything crashed or hung."""
    args = parse_args(argv)
    ctx = context(args)
    ctx.runs = make_seeds(ctx)
    indices = [int(i) for i in args.only.split(",")] if args.only else list(range(args.count))
    print(f"fuzzing {ctx.polyctl}: seed {ctx.seed}, {len(indices)} mutants, {args.workers} workers, "
          f"timeout {ctx.timeout:g} s, memory limit {ctx.memory_mb} MB")
    start = time.monotonic()
    results = []
    with ThreadPoolExecutor(args.workers) as pool:
        for n, mutant in enumerate(pool.map(lambda i: run_mutant(ctx, i), indices), 1):
            results += mutant
            if n % 250 == 0 or n == len(indices):
                bad = sum(r.cls in DEFECTS for r in results)
                print(f"  {n}/{len(indices)} mutants, {len(results)} runs, {time.monotonic() - start:.0f} s, "
                      f"{bad} crash/hang", flush=True)
    defects = report(results, time.monotonic() - start, ctx, len(indices))
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
