#!/usr/bin/env python3
"""Calibrates `docent ask --min-score`, the retrieval score below which docent
says the documents do not contain the answer instead of running the model.

For a SQuAD-format file, the articles are split in two by position (even and
odd). The even articles are indexed; their questions are *answerable* (their
paragraph is in the index), while the odd articles' questions are
*unanswerable* (their topic is not in the index at all). Each question's best
retrieval score is recorded with `docent search --queries --hits`, and the
script prints, for a range of thresholds, the share of answerable questions
kept and of unanswerable ones declined.

    cargo build && python3 scripts/calibrate_min_score.py \\
        ../shared/data/squad-v1.1-dev-a.json ../shared/data/korquad-v1.0-dev-a.json

The threshold is chosen for the general case (the balanced accuracy over both
files together), not tuned to either file.
"""
import json
import pathlib
import random
import subprocess
import sys
import tempfile

DOCENT = pathlib.Path(__file__).resolve().parent.parent / "target" / "debug" / "docent"
PER_SIDE = 400


def best_scores(ix, questions, work, tag):
    qfile = work / f"{tag}.txt"
    hits = work / f"{tag}.jsonl"
    qfile.write_text("\n".join(questions) + "\n")
    subprocess.run(
        [DOCENT, "--index", ix, "search", "--queries", qfile, "--hits", hits, "-k", "1"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    out = []
    for line in hits.read_text().splitlines():
        h = json.loads(line)["hits"]
        out.append(h[0]["score"] if h else 0.0)
    return out


def run(path, work):
    data = json.loads(pathlib.Path(path).read_text())["data"]
    docs = work / "docs"
    docs.mkdir(parents=True)
    answerable, unanswerable = [], []
    n = 0
    for i, article in enumerate(data):
        for p in article["paragraphs"]:
            qs = [q["question"].replace("\n", " ").strip() for q in p["qas"]]
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
    subprocess.run([DOCENT, "--index", ix, "index", docs], check=True, stdout=subprocess.DEVNULL)
    return best_scores(ix, answerable, work, "yes"), best_scores(ix, unanswerable, work, "no")


def table(name, yes, no, thresholds):
    print(f"\n{name}: {len(yes)} answerable, {len(no)} unanswerable questions")
    print(f"{'threshold':>9} {'answerable kept':>16} {'unanswerable declined':>22} {'balanced':>9}")
    for t in thresholds:
        kept = sum(s >= t for s in yes) / len(yes)
        declined = sum(s < t for s in no) / len(no)
        print(f"{t:>9.2f} {kept:>16.3f} {declined:>22.3f} {(kept + declined) / 2:>9.3f}")


def main():
    thresholds = [x / 100 for x in range(10, 71, 5)]
    everything_yes, everything_no = [], []
    for path in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as d:
            yes, no = run(path, pathlib.Path(d))
        table(pathlib.Path(path).name, yes, no, thresholds)
        everything_yes += yes
        everything_no += no
    table("all files", everything_yes, everything_no, thresholds)
    best = max(
        thresholds,
        key=lambda t: (sum(s >= t for s in everything_yes) / len(everything_yes)
                       + sum(s < t for s in everything_no) / len(everything_no)),
    )
    print(f"\nbest balanced threshold over all files: {best:.2f}")


if __name__ == "__main__":
    main()
