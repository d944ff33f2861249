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

`--confirms` does the same for `--min-confirmed`: once the model has
answered, it is asked whether its sources state that answer (the template's
`confirm`). Run the evaluations with `--min-confirmed 0.001` too; each
record's `confirmed` is that probability. Every pair of thresholds is
printed, and the area under the ROC curve of each probability for
answerable against unanswerable questions and, on answerable ones, for
right answers against wrong ones.

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


def rates(records, threshold, gate=None, confirm=0.0):
    un = [r for r in records if r.get("impossible")]
    an = [r for r in records if not r.get("impossible")]

    def declined(r):
        p = r.get("answerable")
        c = r.get("closest")
        q = r.get("confirmed")
        gated = gate is not None and c is not None and c < gate
        unconfirmed = q is not None and q < confirm
        return bool(r.get("declined")) or gated or (p is not None and p < threshold) or unconfirmed

    def right(r):
        return bool(r.get("correct")) and not declined(r)

    share = lambda xs, f: sum(map(f, xs)) / len(xs) if xs else float("nan")
    return share(un, declined), share(an, declined), share(an, right), len(un), len(an)


def auc(pos, neg):
    """The chance that a random `pos` scores above a random `neg`."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def separation(records, key):
    answered = [r for r in records if not r.get("declined") and r.get(key) is not None]
    an = [r[key] for r in answered if not r.get("impossible")]
    un = [r[key] for r in answered if r.get("impossible")]
    right = [r[key] for r in answered if not r.get("impossible") and r.get("correct")]
    wrong = [r[key] for r in answered if not r.get("impossible") and not r.get("correct")]
    return auc(an, un), auc(right, wrong)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--thresholds", default="0,0.3,0.4,0.45,0.5,0.55,0.6,0.65,0.7")
    ap.add_argument("--gates", default="", help="retrieval gates to apply, e.g. 0.78,0.80,0.82")
    ap.add_argument("--confirms", default="0", help="--min-confirmed thresholds to apply, e.g. 0,0.3,0.5")
    args = ap.parse_args()
    sets = [(f, load(f)) for f in args.files]
    for f, rs in sets:
        measured = sum(r.get("answerable") is not None for r in rs)
        confirmed = sum(r.get("confirmed") is not None for r in rs)
        print(f"{f}: {len(rs)} questions, the check asked on {measured}, the confirmation on {confirmed}")
        for key in ("answerable", "confirmed"):
            a_u, r_w = separation(rs, key)
            print(f"  {key}: area under the ROC curve, answerable against unanswerable {a_u:.3f}, right against wrong {r_w:.3f}")
    print()
    gates = [float(g) for g in args.gates.split(",") if g] or [None]
    confirms = [float(c) for c in args.confirms.split(",") if c]
    print("gate | threshold | confirm | " + " | ".join(f"{f.split('/')[-1]}: unanswerable declined / answerable declined / accuracy" for f, _ in sets))
    for g in gates:
        for t in map(float, args.thresholds.split(",")):
            for c in confirms:
                cells = []
                for _, rs in sets:
                    u, a, acc, nu, na = rates(rs, t, g, c)
                    cells.append(f"{u:.3f} / {a:.3f} / {acc:.3f}" if nu else f"- / {a:.3f} / {acc:.3f}")
                gate = "as run" if g is None else f"{g:.2f}"
                print(f"{gate} | {t:.2f} | {c:.2f} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
