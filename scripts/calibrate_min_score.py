#!/usr/bin/env python3
"""Calibrates `docent ask --min-score` for one encoder: the cosine similarity
below which no chunk of the index is close enough to the question, and
docent says the documents do not contain the answer without running the
model.

For a SQuAD-format file, the articles are split in two by position (even and
odd). The even articles are indexed; their questions are *answerable* (their
paragraph is in the index), while the odd articles' questions are
*unanswerable* (their topic is not in the index at all). Each question's best
similarity to any chunk (what `ask` compares: the best
cosine of the dense search, whichever chunks the fusion then keeps) is
recorded with `docent search --mode dense -k 1 --queries --hits`, and the script
prints, for a range of thresholds, the share of answerable questions kept and
of unanswerable ones declined.

    cargo build && python3 scripts/calibrate_min_score.py --encoder multilingual-e5-small \\
        ../shared/data/squad-v1.1-dev-a.json ../shared/data/korquad-v1.0-dev-a.json

Each encoder has its own similarity scale (MiniLM's cosines of related texts
run from 0.3 up, E5's from 0.75), and E5's Korean cosines run higher than its
English ones, so each encoder has a threshold per script, kept in
models/manifest.toml (`retrieval.min_score_latin`, `min_score_cjk`) and
recorded with every index. Give one file per language. Each threshold is the
highest that still keeps 90% of that language's answerable questions
(declining a question the documents answer costs a user more than running
the model on one they do not: the model may still decline it); the best
balanced accuracy over all files is printed beside them.

With `--across`, each file is a set whose questions were translated into
another language than its documents (`cargo bench --bench
translate_questions`; its unanswerable questions are left out), and the
threshold is the one for a chunk in another script than the question
(`retrieval.min_score_across`): the same split, a Korean question about an
English article in the index against one about an article outside it.

    python3 scripts/calibrate_min_score.py --encoder multilingual-e5-small --across sq1-ko.json

`DOCENT` names the binary (default: target/debug/docent).
"""
import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile

DOCENT = os.environ.get(
    "DOCENT", pathlib.Path(__file__).resolve().parent.parent / "target" / "debug" / "docent"
)
PER_SIDE = 400


K = 1


def best_scores(ix, questions, work, tag):
    qfile = work / f"{tag}.txt"
    hits = work / f"{tag}.jsonl"
    qfile.write_text("\n".join(questions) + "\n")
    subprocess.run(
        [DOCENT, "--index", ix, "search", "--mode", "dense", "--queries", qfile, "--hits", hits,
         "-k", str(K)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    out = []
    for line in hits.read_text().splitlines():
        h = json.loads(line)["hits"]
        out.append(max((x["similarity"] for x in h), default=0.0))
    return out


def run(path, work, encoder):
    data = json.loads(pathlib.Path(path).read_text())["data"]
    docs = work / "docs"
    docs.mkdir(parents=True)
    answerable, unanswerable = [], []
    n = 0
    for i, article in enumerate(data):
        for p in article["paragraphs"]:
            qs = [
                q["question"].replace("\n", " ").strip()
                for q in p["qas"]
                if not q.get("is_impossible")
            ]
            if i % 2 == 0:
                (docs / f"{n:05d}.txt").write_text(
                    article["title"].replace("_", " ") + "\n\n" + p["context"] + "\n"
                )
                n += 1
                answerable += qs
            else:
                unanswerable += qs
    rng = random.Random(7)
    answerable = rng.sample(answerable, min(PER_SIDE, len(answerable)))
    unanswerable = rng.sample(unanswerable, min(PER_SIDE, len(unanswerable)))
    ix = work / "ix"
    subprocess.run([DOCENT, "--index", ix, "index", docs, "--encoder", encoder], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return best_scores(ix, answerable, work, "yes"), best_scores(ix, unanswerable, work, "no")


def table(name, yes, no, thresholds):
    print(f"\n{name}: {len(yes)} answerable, {len(no)} unanswerable questions")
    print(f"{'threshold':>9} {'answerable kept':>16} {'unanswerable declined':>22} {'balanced':>9}")
    for t in thresholds:
        kept = sum(s >= t for s in yes) / len(yes)
        declined = sum(s < t for s in no) / len(no)
        print(f"{t:>9.2f} {kept:>16.3f} {declined:>22.3f} {(kept + declined) / 2:>9.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default="all-minilm-l6-v2")
    ap.add_argument("--across", action="store_true",
                    help="the files' questions are translated: calibrate min_score_across")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    thresholds = [x / 100 for x in range(10, 96, 1)]
    sides = []
    for path in args.files:
        with tempfile.TemporaryDirectory() as d:
            yes, no = run(path, pathlib.Path(d), args.encoder)
        sides.append((yes, no))

    def balanced(t):
        return sum(
            sum(s >= t for s in yes) / len(yes) + sum(s < t for s in no) / len(no) for yes, no in sides
        ) / (2 * len(sides))

    balanced_best = max(thresholds, key=balanced)
    print(f"\n{args.encoder}: best balanced threshold {balanced_best:.2f} "
          f"(balanced accuracy {balanced(balanced_best):.3f})")
    for path, (yes, no) in zip(args.files, sides):
        best = max(t for t in thresholds if sum(s >= t for s in yes) / len(yes) >= 0.90)
        near = sorted({t for t in thresholds if round(t * 100) % 5 == 0}
                      | {t for t in thresholds if abs(t - best) <= 0.05})
        table(pathlib.Path(path).name, yes, no, near)
        kept = sum(s >= best for s in yes) / len(yes)
        declined = sum(s < best for s in no) / len(no)
        what = "min_score_across" if args.across else "min_score"
        print(f"{args.encoder}, {pathlib.Path(path).name}: {what}, highest threshold keeping 90% of "
              f"answerable questions {best:.2f}: answerable kept {kept:.3f}, "
              f"unanswerable declined {declined:.3f}")


if __name__ == "__main__":
    main()
