#!/usr/bin/env python3
"""sentence-transformers on the same texts, model files and threads as
`docent bench embed` (or `cargo bench --bench embed`), for comparison.
Not run by CI.

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    docent bench embed ../shared/data/squad-v1.1-dev-a.json --limit 400 --threads 2 \
        --export /tmp/emb.json
    HF_HUB_OFFLINE=1 /tmp/st/bin/python benches/embed_peer.py /tmp/emb.json [BATCH] [THREADS]

The input is either a JSON list of texts or the export of `docent bench
embed` (texts and docent's embeddings); with the latter it also prints the
cosine between docent's and sentence-transformers' embedding of each text.
"""
import json
import os
import pathlib
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"


def main():
    data = json.loads(pathlib.Path(sys.argv[1]).read_text())
    docent = None
    if isinstance(data, dict):
        texts, docent = data["texts"], data["embeddings"]
    else:
        texts = data
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    torch.set_num_threads(threads)
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    snap = pathlib.Path(cache) / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / REVISION
    model = SentenceTransformer(str(snap), device="cpu")
    tokens = sum(min(len(model.tokenizer(t)["input_ids"]), model.max_seq_length) for t in texts)
    model.encode(texts[:64], batch_size=batch)
    t = time.perf_counter()
    st = model.encode(texts, batch_size=batch, normalize_embeddings=True)
    s = time.perf_counter() - t
    print(f"sentence-transformers {torch.__version__}: {len(texts)} texts, {tokens} tokens, batch {batch}, "
          f"{threads} threads: {s:.2f} s, {len(texts) / s:.1f} texts/s, {tokens / s:.0f} tokens/s")
    if docent is not None:
        import numpy as np

        d = np.asarray(docent, dtype=np.float64)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        cos = (d * np.asarray(st, dtype=np.float64)).sum(axis=1)
        print(f"cosine docent vs sentence-transformers: min {cos.min():.6f}, mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
