"""LangServe's own client, `RemoteRunnable`, against docent's `ask` chain:
invoke, stream and batch, as LangChain code would call a chain served by
LangServe.

Run by tests/serve_clients.rs: python langserve_client.py BASE_URL
Prints one JSON object with what it saw; exits non-zero on failure.
"""

import json
import sys

from langserve import RemoteRunnable

ask = RemoteRunnable(sys.argv[1] + "/ask/")

invoked = ask.invoke("What is LangServe?")

streamed = ""
last = None
for chunk in ask.stream({"question": "양자화란 무엇인가요?"}):
    if "answer" in chunk:
        streamed += chunk["answer"]
    last = chunk

batch = ask.batch(["What is RAG?", {"question": "환각이란 무엇인가요?", "k": 1}])

print(
    json.dumps(
        {
            "invoke_answer": invoked["answer"],
            "invoke_sources": invoked["sources"],
            "stream_answer": streamed,
            "stream_last": last,
            "batch_answers": [b["answer"] for b in batch],
            "batch_sources": [len(b["sources"]) for b in batch],
        },
        ensure_ascii=False,
    )
)
