#!/usr/bin/env python3
"""Writes tests/fixtures/encoder-minilm.json: reference sentence embeddings.

The reference is the Python sentence-transformers library itself, run on the
same model files docent uses (the pinned all-MiniLM-L6-v2 snapshot in the
Hugging Face cache, as `docent models pull all-minilm-l6-v2` leaves it).

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    HF_HUB_OFFLINE=1 /tmp/st/bin/python scripts/make_encoder_fixture.py

The texts are English and Korean, from a few words to well over the model's
256-token limit (so that truncation is checked too), with emoji and mixed
scripts.
"""
import json
import os
import pathlib

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

REPO = "sentence-transformers/all-MiniLM-L6-v2"
REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"

LONG_EN = (
    "Retrieval-augmented generation combines a retriever, which finds passages "
    "relevant to a question, with a generator, which writes an answer grounded in "
    "those passages. "
) * 12
LONG_KO = (
    "검색 증강 생성은 질문과 관련된 구절을 찾는 검색기와, 그 구절에 근거해 답을 쓰는 "
    "생성기를 결합한 방법입니다. "
) * 8

TEXTS = [
    "hello",
    "What is quantization?",
    "A small language model runs on a laptop CPU.",
    "The quick brown fox jumps over the lazy dog.",
    "HNSW is a graph-based approximate nearest neighbour index.",
    "LangServe deploys LangChain chains as a REST API built on FastAPI.",
    "Tokenization splits text into tokens with algorithms such as BPE, WordPiece or SentencePiece.",
    "In 2023, over 1,000,000 models were shared on the Hugging Face Hub!",
    "def add(a, b):\n    return a + b",
    "I love local AI 🤖🚀 — no cloud needed.",
    "   leading and trailing whitespace   ",
    "UPPER CASE AND lower case",
    "안녕하세요",
    "양자화는 무엇인가요?",
    "소형 언어 모델은 노트북의 CPU에서도 돌아갑니다.",
    "환각은 유창하지만 근거가 없는 답입니다.",
    "허깅 페이스는 모델과 데이터셋을 공유하는 허브입니다.",
    "랭체인(LangChain)은 LLM 애플리케이션을 만드는 프레임워크입니다.",
    "서울은 대한민국의 수도이며 인구는 약 940만 명입니다.",
    "토큰화 tokenization 과 임베딩 embedding 은 다릅니다.",
    "이모지도 처리합니다 😀👍",
    LONG_EN,
    LONG_KO,
    " ".join(["word"] * 400),
]


def main():
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    snapshot = pathlib.Path(cache) / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / REVISION
    model = SentenceTransformer(str(snapshot), device="cpu")
    emb = model.encode(TEXTS, batch_size=8, normalize_embeddings=False, convert_to_numpy=True)
    tokens = [len(model.tokenizer(t, truncation=False)["input_ids"]) for t in TEXTS]
    out = {
        "model": REPO,
        "revision": REVISION,
        "max_seq_length": model.max_seq_length,
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "texts": [
            {"text": t, "tokens_untruncated": n, "embedding": [round(float(x), 7) for x in e]}
            for t, n, e in zip(TEXTS, tokens, emb)
        ],
    }
    path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "encoder-minilm.json"
    path.write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {len(TEXTS)} texts, max tokens {max(tokens)}")


if __name__ == "__main__":
    main()
