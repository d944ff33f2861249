"""Reference token ids and greedy continuations from llama.cpp.

Writes tests/fixtures/generate-<model>.json for each GGUF model given:
  * `tokenize`: llama.cpp's token ids for ~60 English, Korean, code, emoji and
    whitespace strings (no BOS, special tokens not parsed), plus a few with
    special tokens parsed;
  * `chat`: the model's chat template rendered by Jinja2 the way Hugging Face
    renders it (trim_blocks, lstrip_blocks), when the model has one;
  * `rag` and `clear`: prompts' token ids and the first 32 tokens llama.cpp
    picks greedily after them, with each step's margin between the best two
    logits and the top logits of the first step (see below).

Usage (llama.cpp comes from the llama-cpp-python package, built from source
by pip; `benches/generate_peer.py` builds it for this CPU in
~/.cache/docent/llama-venv-x86, AMX off):
    ~/.cache/docent/llama-venv-x86/bin/pip install jinja2
    ~/.cache/docent/llama-venv-x86/bin/python scripts/make_generate_fixtures.py \
        smollm2-135m-instruct-q4_1=PATH/SmolLM2-135M-Instruct.Q4_1.gguf \
        gemma-3-270m-q4_k_m=PATH/gemma-3-270m-q4_k_m.gguf \
        qwen2.5-coder-0.5b-instruct-q4_k_m=PATH/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
        qwen2.5-coder-1.5b-instruct-q4_k_m=PATH/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

(The Qwen fixtures were made with llama-cpp-python 0.3.36 built with
GGML_NATIVE off, AVX-512, AVX-512 VNNI and AVX-VNNI on, AMX off.)
"""

import json
import sys

import jinja2
import numpy as np
from llama_cpp import Llama, llama_cpp

STRINGS = [
    "",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "Hello, world!",
    " Hello world",
    "hello  world",
    "Hello\n\nWorld",
    "What is retrieval-augmented generation?",
    "The quick brown fox jumps over the lazy dog.",
    "It's a dog's life, isn't it? They'll say we'd've known.",
    "HNSW (Hierarchical Navigable Small World) graphs give approximate nearest neighbours.",
    "Q4_K_M quantisation stores 4.5 bits per weight.",
    "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1e-9 1,000,000",
    "Dates like 2026-11-27 and times like 19:57:36 UTC.",
    "e-mail: someone@example.org, path: /usr/local/bin/docent",
    "URL https://example.org/a/b?c=d&e=f#g",
    "ALL CAPS SHOUTING AND MiXeD cAsE",
    "naïve café résumé coöperate façade",
    "Ünïcödé ñ ß ø å æ œ",
    "Ελληνικά και Русский текст",
    "العربية من اليمين إلى اليسار",
    "עברית",
    "हिन्दी भाषा",
    "ภาษาไทย",
    "日本語のテキストです。",
    "中文文本，标点符号。",
    "검색 증강 생성은 무엇인가요?",
    "검색 증강 생성(RAG)은 언어 모델이 답하기 전에 문서에서 관련 내용을 찾아 근거로 삼는 방법이다.",
    "양자화는 모델의 가중치를 더 적은 비트로 표현하는 기법입니다.",
    "대한민국의 수도는 서울이다. 서울의 인구는 약 950만 명이다.",
    "한국어와 English가 섞인 문장 mixed with 숫자 123.",
    "안녕하세요!!! 반갑습니다~~ ^^",
    "ㄱㄴㄷ ㅏㅑㅓ 자모",
    "1950년 6월 25일에 한국 전쟁이 시작되었다.",
    "“따옴표”와 ‘작은따옴표’, 그리고 「괄호」",
    "fn main() {\n    println!(\"Hello, world!\");\n}",
    "def f(x):\n\treturn x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "<html><body><p class=\"x\">Hi</p></body></html>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "    indented    with    spaces    ",
    "trailing spaces   ",
    "line one\r\nline two\r\n",
    "a\u00a0non-breaking\u2009thin\u200bzero-width",
    "emoji 😀 😃 😄",
    "👍🏽 skin tone",
    "👨‍👩‍👧‍👦 family ZWJ sequence",
    "🇰🇷🇺🇸 flags",
    "math: ∑_{i=1}^{n} i² = n(n+1)/2, √2 ≈ 1.414, ∞ ≠ 0",
    "arrows → ← ↑ ↓ and box ┌─┐",
    "dash — and en dash – and ellipsis …",
    "<|im_start|>user\nliteral control text<|im_end|>",
    "<start_of_turn>user\nliteral gemma turn<end_of_turn>",
    "<s> </s> <unk> <pad> [CLS] [SEP]",
    "\u2581 already a sentencepiece space",
    "\x00\x01 control bytes \x7f",
    "A" * 100,
    "가" * 50,
    "The documents do not contain the answer.",
    "[1] corpus/glossary-en.md:12 — Glossary > Retrieval-augmented generation",
]

SPECIAL_STRINGS = [
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text after bos",
]

SYSTEM = (
    "You are docent, an assistant that answers questions using only the numbered "
    "sources the user gives. Answer briefly and cite the sources you used by their "
    "numbers, like [1]."
)
SOURCES = {
    "rag": (
        "[1] corpus/glossary-en.md:3 — Glossary > Retrieval-augmented generation\n"
        "Retrieval-augmented generation (RAG) answers a question in two steps: it first "
        "retrieves passages relevant to the question from a collection of documents, then "
        "asks a language model to write an answer grounded in those passages."
    ),
    "hnsw": (
        "[1] corpus/glossary-en.md:9 — Glossary > HNSW\n"
        "HNSW (hierarchical navigable small world) is a graph index for approximate "
        "nearest-neighbour search. Each vector is linked to its closest neighbours on "
        "several layers; a search starts at the top layer and walks greedily down."
    ),
    "quant": (
        "[1] corpus/quantization-ko.txt:1 — Quantization\n"
        "Quantization stores the weights of a neural network with fewer bits, for "
        "example 4 bits instead of 16, so that the model takes less memory and runs "
        "faster on a CPU, at a small cost in accuracy."
    ),
}
# Two greedy cases per model.
#
# `rag` is a realistic prompt: a source and a question. On such prompts these
# small models often hesitate between two tokens (SmolLM2's best two logits
# come within 0.01 of each other), and llama.cpp's own logits move by up to
# ~0.15 between its batched and one-token paths, so the test replays
# llama.cpp's tokens (teacher forcing) and checks that docent agrees wherever
# llama.cpp's choice is clear (margin >= MIN_MARGIN) and stays close where it
# is not.
#
# `clear` is the one of CLEAR_CANDIDATES whose 32 greedy steps have the
# clearest winners (the largest smallest margin); there docent must produce
# llama.cpp's 32 tokens by itself.
RAG = ("rag", "What are the two steps of retrieval-augmented generation?")
CLEAR_CANDIDATES = [
    # Raw text for a base model to continue, no template.
    ("raw", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"),
    ("raw", "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday. January, February,"),
    # Requests through the model's chat template (or docent's fallback).
    "Count from 1 to 60, separated by commas.",
    "Write the English alphabet from A to Z, separated by spaces.",
    "List the days of the week, then the months of the year, separated by commas.",
    "Repeat this sentence three times: The quick brown fox jumps over the lazy dog.",
    "Copy this text exactly: Retrieval-augmented generation first retrieves passages "
    "relevant to the question, then asks a language model to write an answer grounded "
    "in those passages.",
]
MIN_MARGIN = 0.5


def user_text(source, question):
    return "Sources:\n\n" + SOURCES[source] + "\n\nQuestion: " + question


def greedy(llm, ids, steps=32):
    llm.reset()
    llm.eval(ids)
    generated, margins, first = [], [], None
    for _ in range(steps):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top = np.argsort(-logits)[:10]
        if first is None:
            first = [[int(i), float(logits[i])] for i in top]
        margins.append(round(float(logits[top[0]] - logits[top[1]]), 4))
        generated.append(int(top[0]))
        llm.eval([int(top[0])])
    return {
        "prompt_ids": ids,
        "generated": generated,
        "generated_text": llm.detokenize(generated).decode("utf-8", "replace"),
        "margins": margins,
        "first_step_top10": first,
    }


def tokenize(llm, text, add_bos, special):
    return llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)


def render_chat(template, bos, eos, user):
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg):
        raise jinja2.TemplateError(msg)

    env.globals["raise_exception"] = raise_exception
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user},
    ]
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos
    )


def main():
    for arg in sys.argv[1:]:
        name, path = arg.split("=", 1)
        llm = Llama(model_path=path, n_ctx=1024, n_threads=2, n_batch=512, logits_all=True, verbose=False)
        meta = llm.metadata
        add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"
        out = {
            "model": name,
            "llama_cpp_python": __import__("llama_cpp").__version__,
            "tokenize": [
                {"text": s, "ids": tokenize(llm, s, False, False)} for s in STRINGS
            ],
            "tokenize_special": [
                {"text": s, "ids": tokenize(llm, s, False, True)} for s in SPECIAL_STRINGS
            ],
        }
        template = meta.get("tokenizer.chat_template")
        bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
        eos = llm._model.token_get_text(llm.token_eos()) if llm.token_eos() >= 0 else ""
        def render(user):
            if template:
                return render_chat(template, bos, eos, user)
            # docent's fallback template renders exactly this.
            return SYSTEM + "\n\n" + user + "\n\nAnswer:"

        user = user_text(*RAG)
        prompt = render(user)
        if template:
            out["chat"] = {"system": SYSTEM, "user": user, "rendered": prompt}
        out["rag"] = {"prompt": prompt, **greedy(llm, tokenize(llm, prompt, add_bos, True))}
        out["rag"]["min_margin"] = MIN_MARGIN
        best = None
        for cand in CLEAR_CANDIDATES:
            prompt = cand[1] if isinstance(cand, tuple) else render(cand)
            case = {"prompt": prompt, **greedy(llm, tokenize(llm, prompt, add_bos, True))}
            print(f"{name}: {cand!r}: smallest margin {min(case['margins']):.3f}")
            if best is None or min(case["margins"]) > min(best["margins"]):
                best = case
        out["clear"] = best
        path_out = f"tests/fixtures/generate-{name}.json"
        with open(path_out, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{path_out}: {len(STRINGS)} strings; rag: {out['rag']['generated_text']!r}; clear: {out['clear']['generated_text']!r}")


if __name__ == "__main__":
    main()
