#!/usr/bin/env python3
"""Writes small, valid GGUF files that seed the `gguf` fuzz target: the
header, metadata and tensor table of a real model's kind (a byte-level BPE
tokenizer like SmolLM2's, or a SentencePiece one like Gemma's) with a tiny
vocabulary and one small tensor, so the fuzzer starts from files that pass
the reader and reach the tokenizer builder.

Usage: make_fuzz_gguf_seed.py DIR   (writes DIR/bpe.gguf and DIR/spm.gguf;
the committed seeds are fuzz/regressions/gguf)
"""
import os
import struct
import sys

U32, I32, F32, BOOL, STRING, ARRAY, U64 = 4, 5, 6, 7, 8, 9, 10


def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


# How a scalar of each type is packed.
PACK = {U32: "<I", I32: "<i", F32: "<f", BOOL: "<?"}


def scalar(vtype, value):
    return s(value) if vtype == STRING else struct.pack(PACK[vtype], value)


def kv(key, vtype, value):
    out = s(key) + struct.pack("<I", vtype)
    if vtype == ARRAY:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        out += b"".join(scalar(etype, it) for it in items)
    else:
        out += scalar(vtype, value)
    return out


def gguf(kvs, path):
    rows, cols = 4, 8
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs))
    body = b"".join(kvs)
    # One F32 tensor of 4 x 8 at offset 0.
    tensor = s("token_embd.weight") + struct.pack("<IQQIQ", 2, cols, rows, 0, 0)
    head = header + body + tensor
    pad = (-len(head)) % 32
    data = struct.pack(f"<{rows * cols}f", *[i / 10 for i in range(rows * cols)])
    with open(path, "wb") as f:
        f.write(head + b"\0" * pad + data)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # Byte-level BPE (gpt2): the 256 byte symbols, then a few merges.
    byte_syms = [chr(c) if chr(c).isprintable() and c != 32 else chr(0x100 + c) for c in range(256)]
    merges = ["h e", "l l", "he ll", "o w"]
    tokens = byte_syms + ["he", "ll", "hell", "ow", "<|endoftext|>"]
    types = [1] * (len(tokens) - 1) + [3]
    gguf(
        [
            kv("general.architecture", STRING, "llama"),
            kv("tokenizer.ggml.model", STRING, "gpt2"),
            kv("tokenizer.ggml.pre", STRING, "smollm"),
            kv("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
            kv("tokenizer.ggml.token_type", ARRAY, (I32, types)),
            kv("tokenizer.ggml.merges", ARRAY, (STRING, merges)),
            kv("tokenizer.ggml.bos_token_id", U32, len(tokens) - 1),
            kv("tokenizer.ggml.eos_token_id", U32, len(tokens) - 1),
        ],
        os.path.join(out, "bpe.gguf"),
    )
    # SentencePiece (llama): specials, byte fallback pieces, a few words.
    pieces = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += ["\u2581", "\u2581hello", "\u2581world", "h", "e", "l", "o", "\uc548\ub155"]
    types = [3, 3, 3, 2] + [6] * 256 + [1] * 8
    scores = [0.0] * 260 + [-1.0, -2.0, -2.5, -5.0, -5.0, -5.0, -5.0, -3.0]
    gguf(
        [
            kv("general.architecture", STRING, "gemma3"),
            kv("tokenizer.ggml.model", STRING, "llama"),
            kv("tokenizer.ggml.tokens", ARRAY, (STRING, pieces)),
            kv("tokenizer.ggml.token_type", ARRAY, (I32, types)),
            kv("tokenizer.ggml.scores", ARRAY, (F32, scores)),
            kv("tokenizer.ggml.bos_token_id", U32, 2),
            kv("tokenizer.ggml.eos_token_id", U32, 1),
            kv("tokenizer.ggml.unknown_token_id", U32, 3),
            kv("tokenizer.ggml.add_bos_token", BOOL, True),
        ],
        os.path.join(out, "spm.gguf"),
    )


if __name__ == "__main__":
    main()
