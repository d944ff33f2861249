"""The official `openai` package against `docent serve`: a streamed chat
completion with the conversation so far, its citations read from the
`docent` field of the last chunk, and a whole completion.

Run by tests/serve_clients.rs: python openai_client.py BASE_URL
Prints one JSON object with what it saw; exits non-zero on failure.
"""

import json
import sys

from openai import OpenAI

base = sys.argv[1]
client = OpenAI(base_url=base + "/v1", api_key="unused-on-loopback")

models = [m.id for m in client.models.list().data]

stream = client.chat.completions.create(
    model=models[0],
    stream=True,
    messages=[
        {"role": "user", "content": "What is quantization?"},
        {"role": "assistant", "content": "Quantization stores weights with fewer bits [1]."},
        {"role": "user", "content": "Why does it make a model faster on a CPU?"},
    ],
    max_tokens=80,
)
text = ""
docent = None
finish = None
for chunk in stream:
    choice = chunk.choices[0]
    if choice.delta.content:
        text += choice.delta.content
    if choice.finish_reason:
        finish = choice.finish_reason
    extra = (chunk.model_extra or {}).get("docent")
    if extra:
        docent = extra

whole = client.chat.completions.create(
    model=models[0],
    messages=[{"role": "user", "content": "랭스미스는 무엇을 기록하나요?"}],
    max_tokens=80,
)
whole_extra = whole.model_extra.get("docent") or {}

print(
    json.dumps(
        {
            "models": models,
            "streamed_text": text,
            "finish_reason": finish,
            "sources": docent["sources"] if docent else [],
            "retrieval_query": docent.get("retrieval_query") if docent else None,
            "trace_id": docent["trace_id"] if docent else None,
            "whole_text": whole.choices[0].message.content,
            "whole_sources": whole_extra.get("sources", []),
        },
        ensure_ascii=False,
    )
)
