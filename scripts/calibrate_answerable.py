#!/usr/bin/env python3
"""Calibrates `docent ask --min-answerable`: before it answers, the language
model is asked whether its sources answer the question (the prompt
template's `check`), and below this probability of "yes" docent declines.

Give it the `--out` files of `docent eval --generate` runs made with the
check asked but never acted on (`--min-answerable 0.001`), on sets with and
without unanswerable questions:

    docent eval ../shared/data/squad-v2.0-dev-a.json --sample 120 --sample-seed 11 \\
        --generate --mode hybrid --min-answerable 0.001 --out squad2.jsonl
    docent eval ../shared/data/squad-v1.1-dev-a.json  ... --out squad1.jsonl
    docent eval ../shared/data/korquad-v1.0-dev-a.json ... --out korquad.jsonl
    python3 scripts/calibrate_answerable.py squad2.jsonl squad1.jsonl korquad.jsonl

For each threshold it prints, per file, the share of unanswerable questions
declined, of answerable ones declined (by any cause: the retrieval gate,
the model, the grounding check, or this one), and the answer accuracy that
is left. Answers the check would newly decline count as declined; the rest
stay as they were, since the check does not change them.

`--gates` does the same for the retrieval gate (`--min-score`): run the
evaluations with a low gate (say `--min-score 0.78`), and each record's
`closest` (the cosine of the closest chunk, what the gate compares)
tells which higher gates would have declined it before the model ran.
"""
import argparse
import json


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def rates(records, threshold, gate=None):
    un = [r for r in records if r.get("impossible")]
    an = [r for r in records if not r.get("impossible")]

    def declined(r):
        p = r.get("answerable")
        c = r.get("closest")
        gated = gate is not None and c is not None and c < gate
        return bool(r.get("declined")) or gated or (p is not None and p < threshold)

    def right(r):
        return bool(r.get("correct")) and not declined(r)

    share = lambda xs, f: sum(map(f, xs)) / len(xs) if xs else float("nan")
    return share(un, declined), share(an, declined), share(an, right), len(un), len(an)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--thresholds", default="0,0.3,0.4,0.45,0.5,0.55,0.6,0.65,0.7")
    ap.add_argument("--gates", default="", help="retrieval gates to apply, e.g. 0.78,0.80,0.82")
    args = ap.parse_args()
    sets = [(f, load(f)) for f in args.files]
    for f, rs in sets:
        measured = sum(r.get("answerable") is not None for r in rs)
        print(f"{f}: {len(rs)} questions, the check asked on {measured}")
    print()
    gates = [float(g) for g in args.gates.split(",") if g] or [None]
    print("gate | threshold | " + " | ".join(f"{f.split('/')[-1]}: unanswerable declined / answerable declined / accuracy" for f, _ in sets))
    for g in gates:
        for t in map(float, args.thresholds.split(",")):
            cells = []
            for _, rs in sets:
                u, a, acc, nu, na = rates(rs, t, g)
                cells.append(f"{u:.3f} / {a:.3f} / {acc:.3f}" if nu else f"- / {a:.3f} / {acc:.3f}")
            gate = "as run" if g is None else f"{g:.2f}"
            print(f"{gate} | {t:.2f} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
