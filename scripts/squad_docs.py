#!/usr/bin/env python3
"""Turns a SQuAD-format file into a folder of documents and a query list.

    python3 scripts/squad_docs.py ../shared/data/squad-v1.1-dev-a.json /tmp/squad

writes /tmp/squad/docs/NNNN.txt (one paragraph each, the article title as the
first line) and /tmp/squad/questions.txt (one question a line), the inputs of
the indexing-throughput and search-latency measurements in the closing notes:

    docent --index /tmp/squad/ix index /tmp/squad/docs --json
    docent --index /tmp/squad/ix search --queries /tmp/squad/questions.txt
"""
import json
import pathlib
import sys


def main():
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    docs = out / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    data = json.loads(src.read_text())["data"]
    n = 0
    questions = []
    for article in data:
        for p in article["paragraphs"]:
            (docs / f"{n:05d}.txt").write_text(article["title"].replace("_", " ") + "\n\n" + p["context"] + "\n")
            questions += [q["question"].replace("\n", " ") for q in p["qas"]]
            n += 1
    (out / "questions.txt").write_text("\n".join(questions) + "\n")
    contexts = [p["context"] for a in data for p in a["paragraphs"]]
    (out / "paragraphs.json").write_text(json.dumps(contexts, ensure_ascii=False))
    print(f"{n} paragraphs, {len(questions)} questions into {out}")


if __name__ == "__main__":
    main()
