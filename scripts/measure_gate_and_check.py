#!/usr/bin/env python3
"""Measures the retrieval gate (`--min-score`) and the answerability check
(`--min-answerable`) together, on questions whose article is in the index
and on questions whose article is not.

As in `calibrate_min_score.py`, the even articles of a SQuAD-format file
are indexed and the odd ones left out. `docent ask --json` answers N
questions of each side with a low gate (`--min-score 0.78`) and the check
asked but not acted on (`--min-answerable 0.001`), so that the model
answers every question; each answer's trace gives the closest chunk's
cosine and the model's probability of "yes" to the check. Any higher gate
and any check threshold are then applied to those records (neither
changes an answer it lets through). An answer is right when it contains a
gold answer, lower-cased with punctuation dropped.

    cargo build && python3 scripts/measure_gate_and_check.py ../shared/data/squad-v1.1-dev-a.json

Each question runs in its own `docent ask` process (a cold start each
time): about 6 s a question with Qwen2.5-Coder 1.5B on two cores.
"""
import argparse
import json
import pathlib
import random
import re
import subprocess
import tempfile

DOCENT = pathlib.Path(__file__).resolve().parent.parent / "target" / "debug" / "docent"
LOW_GATE = 0.78


def norm(s):
    return re.sub(r"\W+", " ", s.lower()).strip()


def split(path):
    data = json.loads(pathlib.Path(path).read_text())["data"]
    docs, inside, outside = [], [], []
    for i, article in enumerate(data):
        for p in article["paragraphs"]:
            qs = [(q["question"].strip(), [a["text"] for a in q["answers"]]) for q in p["qas"]]
            if i % 2 == 0:
                docs.append(article["title"].replace("_", " ") + "\n\n" + p["context"] + "\n")
                inside += qs
            else:
                outside += qs
    return docs, inside, outside


def ask(ix, question):
    r = subprocess.run(
        [DOCENT, "--index", ix, "ask", "--json", "--min-score", str(LOW_GATE),
         "--min-answerable", "0.001", question],
        capture_output=True, text=True, check=True,
    )
    t = json.loads(r.stdout)["trace"]
    best = max([c["dense"] or 0.0 for c in t["candidates"]] + [0.0])
    reason = (t["abstained"] or {}).get("reason")
    return {"answer": t["answer"], "best": best, "answerable": t.get("answerable"), "reason": reason}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("-n", type=int, default=40, help="questions on each side")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    docs, inside, outside = split(args.file)
    rng = random.Random(args.seed)
    inside, outside = rng.sample(inside, args.n), rng.sample(outside, args.n)
    with tempfile.TemporaryDirectory() as d:
        work = pathlib.Path(d)
        (work / "docs").mkdir()
        for n, text in enumerate(docs):
            (work / "docs" / f"{n:05d}.txt").write_text(text)
        ix = work / "ix"
        subprocess.run([DOCENT, "--index", ix, "index", work / "docs"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sides = {
            "in the index": [dict(ask(ix, q), golds=g) for q, g in inside],
            "not in the index": [dict(ask(ix, q), golds=g) for q, g in outside],
        }

    def declined(r, gate, check):
        if r["best"] < gate or r["reason"] is not None:
            return True
        return r["answerable"] is not None and r["answerable"] < check

    print(f"{args.n} questions each side; right = contains a gold answer")
    print("gate  check | in the index: declined / right | not in the index: declined")
    for gate in (0.78, 0.79, 0.80, 0.81, 0.82):
        for check in (0.0, 0.4):
            on, off = sides["in the index"], sides["not in the index"]
            dec_on = sum(declined(r, gate, check) for r in on)
            right = sum(
                1 for r in on
                if not declined(r, gate, check) and any(norm(g) in norm(r["answer"]) for g in r["golds"])
            )
            dec_off = sum(declined(r, gate, check) for r in off)
            print(f"{gate:.2f}  {check:.1f}   | {dec_on:>2} / {right:>2}                     | {dec_off:>2}")


if __name__ == "__main__":
    main()
