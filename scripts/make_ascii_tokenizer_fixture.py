"""llama.cpp's token ids for every ASCII character between two letters.

Fuzzing the GGUF tokenizers found that SmolLM2's vocabulary marks a few
ASCII control bytes as control tokens, so that llama.cpp drops them when
tokenizing text; this fixture pins that behaviour (and the rest of ASCII)
for every model given. Writes tests/fixtures/tokenizer-ascii.json:
{model: [[ids of "a<c>b"] for c in 0..128]}.

Usage (the same llama.cpp as scripts/make_generate_fixtures.py):
    ~/.cache/docent/llama-venv-x86/bin/python scripts/make_ascii_tokenizer_fixture.py \
        smollm2-135m-instruct-q4_1=PATH/SmolLM2-135M-Instruct.Q4_1.gguf \
        gemma-3-270m-q4_k_m=PATH/gemma-3-270m-q4_k_m.gguf \
        qwen2.5-coder-0.5b-instruct-q4_k_m=PATH/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
        qwen2.5-coder-1.5b-instruct-q4_k_m=PATH/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""

import json
import sys

from llama_cpp import Llama

out = {}
for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    m = Llama(path, vocab_only=True, verbose=False)
    out[name] = [
        m.tokenize(bytes([ord("a"), c, ord("b")]), add_bos=False, special=False)
        for c in range(128)
    ]
with open("tests/fixtures/tokenizer-ascii.json", "w") as f:
    json.dump(out, f)
    f.write("\n")
