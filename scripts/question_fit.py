#!/usr/bin/env python3
"""Does the way a question fits its sources tell an unanswerable question?

Reads the `.fit.jsonl` files `benches/question_fit.rs` writes (each
recorded question's tokens, with their log-probabilities after the
sources and after the system message alone, and the check's `answerable`
probability) and prints the area under the ROC curve, answerable against
unanswerable, of the check and of each summary of the question's fit; then
of the check and one summary together (a logistic regression, 5-fold, so
that no record is scored by a fit that saw it); then, at the issue's bound
of at most 10% of answerable questions declined (counting those declined
before the model, from the eval file), the share of unanswerable ones
declined by the check alone and by the pair.

    docent eval ../shared/data/squad-v2.0-dev-a.json --sample 300 --sample-seed 11 \\
        --generate --mode hybrid --min-answerable 0.001 --out sq2.jsonl
    cargo bench --bench question_fit -- sq2.jsonl
    python3 scripts/question_fit.py sq2.jsonl sq2.fit.jsonl

Only the standard library: the regression is a few hundred steps of
gradient descent on standardised features.
"""
import json
import math
import random
import sys


def auc(labels, scores):
    """Area under the ROC curve: the chance that a positive outscores a
    negative, ties counting half."""
    pos = [s for y, s in zip(labels, scores) if y]
    neg = [s for y, s in zip(labels, scores) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def summaries(rec):
    """Summaries of the question's words: the first token (the question
    word) and a closing "?" are left out."""
    toks, cond, bare = rec["tokens"], rec["with_sources"], rec["without"]
    keep = [i for i in range(len(cond)) if i > 0 and toks[i].strip() not in ("?", "")]
    keep = keep or list(range(len(cond)))
    c = [cond[i] for i in keep]
    gain = [cond[i] - bare[i] for i in keep]
    low = sorted(c)
    return {
        "least log-probability after the sources": low[0],
        "mean of the two least": sum(low[:2]) / len(low[:2]),
        "mean log-probability": sum(c) / len(c),
        "least gain from the sources": min(gain),
        "mean gain from the sources": sum(gain) / len(gain),
    }


def logit(p):
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def fit_predict(train_x, train_y, test_x, steps=500, rate=0.1):
    dims = len(train_x[0])
    mean = [sum(x[d] for x in train_x) / len(train_x) for d in range(dims)]
    std = [
        math.sqrt(sum((x[d] - mean[d]) ** 2 for x in train_x) / len(train_x)) or 1.0
        for d in range(dims)
    ]
    norm = lambda x: [(x[d] - mean[d]) / std[d] for d in range(dims)]  # noqa: E731
    xs = [norm(x) for x in train_x]
    w, b = [0.0] * dims, 0.0
    for _ in range(steps):
        gw, gb = [0.0] * dims, 0.0
        for x, y in zip(xs, train_y):
            p = 1 / (1 + math.exp(-(b + sum(wi * xi for wi, xi in zip(w, x)))))
            for d in range(dims):
                gw[d] += (p - y) * x[d]
            gb += p - y
        w = [wi - rate * g / len(xs) for wi, g in zip(w, gw)]
        b -= rate * gb / len(xs)
    return [b + sum(wi * xi for wi, xi in zip(w, norm(x))) for x in test_x]


def cross_validated(xs, ys, folds=5, seed=0):
    order = list(range(len(xs)))
    random.Random(seed).shuffle(order)
    out = [0.0] * len(xs)
    for f in range(folds):
        test = order[f::folds]
        held = set(test)
        train = [i for i in order if i not in held]
        pred = fit_predict([xs[i] for i in train], [ys[i] for i in train], [xs[i] for i in test])
        for i, p in zip(test, pred):
            out[i] = p
    return out


def best_within(evals, scores, bound=0.10):
    """The most unanswerable questions declined, declining at most `bound`
    of the answerable ones (those declined before the model count)."""
    answerable = sum(1 for r in evals if not r["impossible"])
    unanswerable = len(evals) - answerable
    best = 0.0
    for t in sorted(set(s for s in scores if s is not None)):
        a = u = 0
        for r, s in zip(evals, scores):
            declined = bool(r.get("declined")) or (s is not None and s < t)
            if r["impossible"]:
                u += declined
            else:
                a += declined
        if a / answerable <= bound:
            best = max(best, u / unanswerable)
    return best


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: question_fit.py EVAL.jsonl EVAL.fit.jsonl")
    evals = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    fits = {}
    for line in open(sys.argv[2]):
        if line.strip():
            r = json.loads(line)
            fits[r["question"]] = r
    scored = [r for r in evals if r.get("answerable") is not None and r["question"] in fits]
    ys = [0 if r["impossible"] else 1 for r in scored]
    check = [r["answerable"] for r in scored]
    sums = [summaries(fits[r["question"]]) for r in scored]
    print(f"{len(scored)} answers written, {sum(ys)} to answerable questions")
    print(f"  {auc(ys, check):.3f}  the check, P(yes)")
    for name in sums[0]:
        print(f"  {auc(ys, [s[name] for s in sums]):.3f}  {name}")
    best_pair, best_name = None, None
    for name in sums[0]:
        xs = [[logit(p), s[name]] for p, s in zip(check, sums)]
        pred = cross_validated(xs, ys)
        a = auc(ys, pred)
        print(f"  {a:.3f}  the check and {name} (5-fold)")
        if best_pair is None or a > best_pair[0]:
            best_pair, best_name = (a, pred), name
    xs = [[logit(p)] + list(s.values()) for p, s in zip(check, sums)]
    print(f"  {auc(ys, cross_validated(xs, ys)):.3f}  the check and every summary (5-fold)")
    by_question = {r["question"]: i for i, r in enumerate(scored)}
    check_all = [check[by_question[r["question"]]] if r["question"] in by_question else None for r in evals]
    pair_all = [
        best_pair[1][by_question[r["question"]]] if r["question"] in by_question else None
        for r in evals
    ]
    print("at most 10% of answerable questions declined, unanswerable declined:")
    print(f"  {best_within(evals, check_all):.3f}  the check alone")
    print(f"  {best_within(evals, pair_all):.3f}  the check and {best_name}")


if __name__ == "__main__":
    main()
