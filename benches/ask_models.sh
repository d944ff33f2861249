#!/usr/bin/env bash
# Asks the four questions of issue 14 with every language model of the
# manifest, on an index of corpus/ built with the default encoder, a cold
# process per answer; prints each answer (cut to 400 characters), its
# abstention and sources, and the trace's time to first token from process
# start, model load, prompt and decode rates.
#
#     cargo build && bash benches/ask_models.sh [target/debug/docent]
set -euo pipefail
cd "$(dirname "$0")/.."
DOCENT=${1:-target/debug/docent}
IX=$(mktemp -d)
trap 'rm -rf "$IX"' EXIT
"$DOCENT" --index "$IX/ix" index corpus >/dev/null 2>&1
for model in smollm2-135m-instruct-q4_1 gemma-3-270m-q4_k_m \
    qwen2.5-coder-0.5b-instruct-q4_k_m qwen2.5-coder-1.5b-instruct-q4_k_m; do
    for q in "What is retrieval-augmented generation?" "양자화란 무엇인가요?" \
        "RAG에서 검색기(retriever)의 역할은 무엇인가요?" \
        "What is the difference between LangServe and LangSmith?"; do
        "$DOCENT" --index "$IX/ix" ask --json --model "$model" "$q" 2>/dev/null >"$IX/a.json"
        python3 - "$model" "$q" "$IX/a.json" <<'PY'
import json, sys
model, q, path = sys.argv[1:]
d = json.load(open(path))
t = d["timings"]
print(f"### {model} | {q}")
print(f"answer: {d['answer'].strip()[:400]!r}")
print(f"abstention: {d['abstention']}; sources: "
      f"{[s['path'].split('/')[-1] + ':' + str(s['line']) for s in d['sources']]}")
print(f"time to first token from start {t.get('time_to_first_token_from_start_ms', 0):.0f} ms, "
      f"model load {t.get('model_load_ms', 0):.0f} ms, prompt {t.get('prompt_tokens', 0)} tokens "
      f"in {t.get('prompt_ms', 0):.0f} ms, decode {t.get('decode_tokens_per_s', 0):.1f} tokens/s")
PY
    done
done
