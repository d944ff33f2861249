#!/usr/bin/env python3
"""llama.cpp's figures for the numbers `docent ask --json` reports: model load
time, prompt processing and decoding speed, and time to first token, for the
same GGUF file, the same prompt and the same number of threads.

    python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install llama-cpp-python
    docent ask --docs corpus "What is retrieval-augmented generation?" \\
        --json --show-prompt --max-tokens 64 > /tmp/ask.json
    /tmp/llvenv/bin/python benches/generate_peer.py MODEL.gguf /tmp/ask.json --threads 2

The prompt text is taken from docent's own output (`--show-prompt`), so both
programs run the same tokens; llama.cpp then decodes greedily for as many
tokens as docent did.
"""
import argparse
import json
import time

import numpy as np
from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("ask_json", help="output of docent ask --json --show-prompt")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    ask = json.load(open(args.ask_json))
    t0 = time.perf_counter()
    llm = Llama(model_path=args.model, n_ctx=4096, n_threads=args.threads,
                n_threads_batch=args.threads, n_batch=512, verbose=False)
    load_ms = (time.perf_counter() - t0) * 1e3
    meta = llm.metadata
    add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"
    ids = llm.tokenize(ask["prompt"].encode(), add_bos=add_bos, special=True)
    t1 = time.perf_counter()
    llm.eval(ids)
    prompt_ms = (time.perf_counter() - t1) * 1e3
    n = max(1, ask["timings"]["decode_tokens"])
    t2 = time.perf_counter()
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    first_ms = prompt_ms + (time.perf_counter() - t2) * 1e3
    for _ in range(n - 1):
        llm.eval([tok])
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    decode_ms = (time.perf_counter() - t2) * 1e3
    d = ask["timings"]
    rows = [
        ("model load ms", d["model_load_ms"], load_ms),
        ("prompt tokens", d["prompt_tokens"], len(ids)),
        ("prompt tokens/s", d["prompt_tokens_per_s"], len(ids) / prompt_ms * 1e3),
        ("time to first token ms", d["time_to_first_token_ms"], first_ms),
        ("decode tokens", d["decode_tokens"], n),
        ("decode tokens/s", d["decode_tokens_per_s"], n / decode_ms * 1e3),
    ]
    print(f"{ask['model']} ({args.threads} threads)")
    print(f"{'':<24}{'docent':>12}{'llama.cpp':>12}{'ratio':>8}")
    for name, a, b in rows:
        ratio = a / b if b else float("nan")
        print(f"{name:<24}{a:>12.1f}{b:>12.1f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()
