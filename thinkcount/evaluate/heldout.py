"""Held-out groups: a method trained on every source but one (or every model family but one) and tested on the one
left out, the question a user with traffic from elsewhere asks. The folds are built here; stages/heldout.py trains
and predicts. Scores are Kendall tau-b within answering model (weighted by its traces) and pooled, on a seeded
sample of the held-out group's complete traces, beside prompt length on the same traces."""
import numpy as np

from thinkcount.data.models import UNKNOWN, describe
from thinkcount.data.real import source_of
from thinkcount.evaluate.metrics import tau_both

GROUPINGS = {"source": lambda frame: np.array([source_of(w) for w in frame["worker_id"]]),
             "family": lambda frame: np.array([describe(m).family for m in frame["model"]])}


def held_out_groups(frame, by, min_traces, most):
    """(labels per row, the groups to hold out): those with min_traces complete traces, the largest `most` of them
    (unknown families are never held out: nothing describes them)."""
    labels = GROUPINGS[by](frame)
    complete = ~frame["truncated"].to_numpy(bool)
    sizes = {g: int((complete & (labels == g)).sum()) for g in set(labels) - {UNKNOWN, "embedded"}}
    chosen = sorted((g for g, n in sizes.items() if n >= min_traces), key=lambda g: (-sizes[g], g))[:most]
    return labels, chosen


def fold(frame, labels, held, max_test, seed):
    """The frame of one fold: the held-out group's complete traces (a seeded sample of max_test at most) as test;
    every other row as train, except the shared split's val rows, kept for early stopping."""
    out = frame.copy()
    other = labels != held
    test = np.flatnonzero(~other & ~frame["truncated"].to_numpy(bool))
    if len(test) > max_test:
        test = np.sort(np.random.default_rng(seed).choice(test, max_test, replace=False))
    split = np.where(frame["split"].to_numpy() == "val", "val", "train").astype(object)
    split[~other] = "unused"
    split[test] = "test"
    out["split"] = split
    return out[out["split"] != "unused"].reset_index(drop=True)


def fold_scores(score, test):
    """{method, prompt length: {within, pooled}} on a fold's test rows."""
    y, models = test["counts"].to_numpy(float), test["model"].fillna("").to_numpy()
    length = test["text"].str.len().to_numpy(float)
    return {name: tau_both(s, y, models) for name, s in (("method", score), ("prompt length", length))}


def summary(folds):
    """Mean over folds of each score (None when a fold's is undefined), and the folds where the method does not
    beat prompt length within model."""
    def mean(name, metric):
        values = [f[name][metric] for f in folds.values()]
        return None if not values or None in values else float(np.mean(values))
    return {"mean": {name: {m: mean(name, m) for m in ("within", "pooled")} for name in ("method", "prompt length")},
            "below_length": sorted(g for g, f in folds.items() if None in (f["method"]["within"],
                                                                           f["prompt length"]["within"])
                                   or f["method"]["within"] <= f["prompt length"]["within"])}


def recommend(results):
    """The finalist to serve: the best mean tau within model over held-out sources, with how it compares with prompt
    length there ({method, held_out_tau, prompt_length_tau, below_length}); None when no finalist's is defined."""
    scored = {name: r["source"] for name, r in results.items()
              if r.get("source", {}).get("mean", {}).get("method", {}).get("within") is not None}
    if not scored:
        return None
    best = max(scored, key=lambda name: scored[name]["mean"]["method"]["within"])
    return {"method": best, "by": "mean Kendall tau-b within model over held-out sources",
            "held_out_tau": scored[best]["mean"]["method"]["within"],
            "prompt_length_tau": scored[best]["mean"]["prompt length"]["within"],
            "below_length": scored[best]["below_length"]}
