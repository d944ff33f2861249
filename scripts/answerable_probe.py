#!/usr/bin/env python3
"""Measures linear probes of the language model's hidden state as the
answerability check.

The check asks the model whether its sources answer the question; its "yes"
is a weak witness on questions written to look answerable. A probe (a
logistic regression over one layer's residual stream at the check prompt's
last token) might read more from what the model has read than the word its
last layer picks. This measures that on SQuAD 2.0 questions whose prompts
`docent eval` recorded and whose hidden states the bench `answerable_probe`
saved (docs/benchmarks.md, "A probe of the model's hidden state"):

    docent eval ../shared/data/squad-v2.0-dev-a.json --sample 300 --sample-seed 11 \\
        --generate --mode hybrid --min-answerable 0.001 --out s11.jsonl
    docent eval ../shared/data/squad-v2.0-dev-a.json --sample 700 --sample-seed 23 \\
        --generate --mode hybrid --min-answerable 0.001 --max-tokens 1 --out s23.jsonl
    cargo bench --bench answerable_probe -- s11.jsonl s23.jsonl
    python3 scripts/answerable_probe.py s11 s23 --dataset ../shared/data/squad-v2.0-dev-a.json \\
        --exclude sq2-seed7.jsonl

(`--max-tokens 1`: only the prompts are wanted.) Questions whose ids are in
the `--exclude` files (the reporting sample) are left out, and a question in
two samples counts once. For each saved layer it prints the area under the
ROC curve (answerable against unanswerable) and the share of unanswerable
questions declined within 10% of answerable ones declined, over 5-fold
cross-validation twice: with folds drawn at random, and with folds that
keep each article's questions together, which is what a user's own
documents are to a probe trained on SQuAD. Needs numpy and scikit-learn.
"""
import argparse
import json

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, StratifiedKFold

PLACES = 2  # the answer's prompt, then the check's (the bench's order)


def load(stem, layers, width):
    with open(stem + ".hidden.jsonl", encoding="utf-8") as f:
        meta = [json.loads(line) for line in f if line.endswith("\n")]
    x = np.fromfile(stem + ".hidden.f32", dtype="<f4")
    # A run stopped early has written some records' states and not others.
    n = min(len(meta), x.size // (PLACES * layers * width))
    return meta[:n], x[: n * PLACES * layers * width].reshape(n, PLACES, layers, width)


def within(y, score, bound=0.10):
    """The share of unanswerable questions declined (score below a
    threshold) while declining at most `bound` of the answerable ones."""
    best = 0.0
    for t in np.unique(score):
        if (score[y] < t).mean() <= bound:
            best = max(best, (score[~y] < t).mean())
    return best


def cross_validated(h, y, folds, groups, c):
    """Each question's probe log-odds from a probe trained without its fold."""
    score = np.zeros(len(y))
    for tr, te in folds.split(h, y, groups):
        mean, std = h[tr].mean(0), h[tr].std(0) + 1e-6
        clf = LogisticRegression(C=c, max_iter=5000).fit((h[tr] - mean) / std, y[tr])
        score[te] = clf.decision_function((h[te] - mean) / std)
    return score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stems", nargs="+", help="the --out files the bench read, without .jsonl")
    ap.add_argument("--dataset", required=True, help="the SQuAD file, to group folds by article")
    ap.add_argument("--exclude", nargs="*", default=[], help="--out files whose questions to leave out")
    ap.add_argument("--saved-layers", default=",".join(str(l) for l in range(1, 28, 2)))
    ap.add_argument("--width", type=int, default=1536)
    ap.add_argument("--place", type=int, default=1, help="0: the answer's prompt, 1: the check's")
    ap.add_argument("--c", type=float, default=0.001, help="inverse regularisation strength")
    args = ap.parse_args()
    saved = [int(l) for l in args.saved_layers.split(",")]
    article_of = []
    with open(args.dataset, encoding="utf-8") as f:
        for a, article in enumerate(json.load(f)["data"]):
            article_of += [a] * len(article["paragraphs"])
    excluded = set()
    for path in args.exclude:
        with open(path, encoding="utf-8") as f:
            excluded |= {json.loads(line)["id"] for line in f if line.strip()}
    paragraph, metas, xs = {}, [], []
    for stem in args.stems:
        with open(stem + ".jsonl", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    paragraph[r["id"]] = r["gold_paragraph"]
        m, x = load(stem, len(saved), args.width)
        metas += m
        xs.append(x)
    x = np.concatenate(xs)
    seen, rows = set(), []
    for i, r in enumerate(metas):
        if r["id"] not in excluded and r["id"] not in seen and r["check"] == r["check"]:
            seen.add(r["id"])
            rows.append(i)
    metas, x = [metas[i] for i in rows], x[rows]
    y = np.array([not r["impossible"] for r in metas])
    yes = np.clip(np.array([r["check"] for r in metas]), 1e-6, 1 - 1e-6)
    groups = np.array([article_of[paragraph[r["id"]]] for r in metas])
    print(
        f"{len(metas)} questions ({(~y).sum()} unanswerable) from {len(set(groups))} articles; "
        f"{len(excluded)} ids excluded"
    )
    print(f"the model's yes: area {roc_auc_score(y, yes):.3f}, within 10%: {within(y, yes):.3f}")
    print("layer | random folds: area, within 10% | article folds: area, within 10% | article folds, probe + yes log-odds")
    shuffled = StratifiedKFold(5, shuffle=True, random_state=0)
    by_article = GroupKFold(5)
    for li, layer in enumerate(saved):
        h = x[:, args.place, li]
        r = cross_validated(h, y, shuffled, None, args.c)
        a = cross_validated(h, y, by_article, groups, args.c)
        both = a + np.log(yes / (1 - yes))
        print(
            f"{layer:5} | {roc_auc_score(y, r):.3f}, {within(y, r):.3f} | "
            f"{roc_auc_score(y, a):.3f}, {within(y, a):.3f} | "
            f"{roc_auc_score(y, both):.3f}, {within(y, both):.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
