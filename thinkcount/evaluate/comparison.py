"""Across rows of the comparison: each method's paired tau difference to the best baseline and to the best
method (the same bootstrap resamples for both sides), and what its ranking gains a router."""
import numpy as np
import pandas as pd

from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl
from thinkcount.data.frames import model_matches
from thinkcount.data.records import KEY
from thinkcount.evaluate.engine_sim import Engine, sweep, tokens
from thinkcount.evaluate.metrics import (RepeatedSamples, bootstrap_tau, kendall, paired_differences, sample_ceiling,
                                         tau_on_pairs)

ENGINE_KEYS = ("max_batch", "kv_tokens", "step_ms", "decode_ms_per_seq", "prefill_ms_per_token")


def test_scores(names, frame):
    """{name: scores of the test prompts} in the order of frame's test rows (frame: counts joined with the split)."""
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    scores = {}
    for name in names:
        predictions = pd.DataFrame(load_jsonl(paths.predictions(name)))
        if predictions.empty:
            continue
        merged = test[KEY].merge(predictions[predictions["split"] == "test"][KEY + ["score"]], on=KEY, how="left")
        scores[name] = merged["score"].to_numpy()
    return test, scores


def best(rows, baseline, target="counts"):
    """The best row by tau on target among the baselines trained on the methods' rows (baseline=True) or the
    methods."""
    pool = [r for r in rows if r["kendall_tau"] is not None and r["target"] == target
            and (r["task"] == "baseline") == baseline and r.get("kind") not in ("oracle", "served")
            and r.get("train_rows_rule", "budget") == "budget"]
    return max(pool, key=lambda r: r["kendall_tau"])["method"] if pool else None


def add_paired_differences(rows, scores, test, ev):
    """Each row against the best baseline and the best method on its own target, on the same resamples; the
    verdicts against one reference are Holm-corrected over all rows compared with it."""
    for target in sorted({r["target"] for r in rows}):
        names = [r["method"] for r in rows if r["target"] == target and r["method"] in scores]
        for key, baseline in (("vs_best_baseline", True), ("vs_best_method", False)):
            reference = best(rows, baseline, target)
            if reference not in scores:
                continue
            others = {n: scores[n] for n in names if n != reference}
            diffs = paired_differences(others, test[target], scores[reference], ev.bootstrap, ev.seed)
            for r in rows:
                if r["method"] in diffs:
                    r[key] = {"reference": reference, **diffs[r["method"]]}
    return rows


def add_sample_ceiling(rows, scores, test, ev):
    """Where the test prompts have repeated samples from one model (real traces): the sample ceiling of each
    target, and each row's tau on the ceiling's held-out samples as a share of it, and against the mean of
    samples. Returns (rows, {target: ceiling}); the ceilings are None otherwise."""
    targets = sorted({r["target"] for r in rows})
    samples = RepeatedSamples.of(test)
    ceilings = {t: sample_ceiling(samples, test, t, ev.bootstrap, ev.seed) for t in targets}
    truth = {t: test[t].to_numpy(float) for t in targets if ceilings[t] is not None}
    pair_truth = {t: samples.pair_mean(np.log1p(y)) for t, y in truth.items()}
    for r in rows:
        ceiling = ceilings[r["target"]]
        if ceiling is None or r["method"] not in scores or not np.isfinite(scores[r["method"]]).all():
            continue
        t = r["target"]
        on_held, vs_mean = tau_on_pairs(scores[r["method"]], truth[t], pair_truth[t], samples)
        r["share_of_ceiling"] = None if on_held is None or not ceiling["kendall_tau"] else \
            on_held / ceiling["kendall_tau"]
        r["kendall_tau_mean"] = vs_mean
    return rows, ceilings


def add_families(rows, scores, test, ev):
    """Each row's tau on the test rows of every model family (evaluate.families: {name: regular expression on the
    model's name}), with its interval: pooled against model-aware methods, and methods trained on one family
    (train_models) tested on another."""
    families = ev.families
    members = {name: model_matches(test["model"], pattern) for name, pattern in families.items()}
    for r in rows:
        if r["method"] not in scores or not families:
            continue
        score, y = scores[r["method"]], test[r["target"]].to_numpy(float)
        r["families"] = {name: {"n": int(m.sum()), "kendall_tau": kendall(score[m], y[m]),
                                "kendall_tau_ci95": bootstrap_tau(score[m], y[m], ev.bootstrap, ev.seed)}
                         for name, m in members.items() if m.sum() >= 2}
    return rows


def add_serving(rows, scores, test, serving):
    """The test prompts served by the engine model at every load of the sweep, first come first served, by
    their true lengths and shortest-predicted-first by each row's score. Each row gets its mean and p90
    latency relative to first come first served at serving.load; the whole sweep is returned beside."""
    engine = Engine(**{key: getattr(serving, key) for key in ENGINE_KEYS})
    prompt = tokens(test["text"].str.len(), serving.chars_per_token)
    output = tokens(test["trace_chars"], serving.chars_per_token)
    ranked = {r["method"]: scores[r["method"]] for r in rows
              if r["method"] in scores and np.isfinite(scores[r["method"]]).all()}
    loads = sorted(set(serving.sweep) | {serving.load})
    result = sweep(engine, prompt, output, ranked, loads, serving.repeats, serving.seed)
    at = result[serving.load]
    for r in rows:
        s = at.get(r["method"])
        r["serving"] = None if s is None else {"mean": s["mean"]["vs_fcfs"], "p90": s["p90"]["vs_fcfs"]}
    return rows, {"engine": {key: getattr(serving, key) for key in ENGINE_KEYS}, "loads": loads,
                  "policies": {name: {str(load): result[load][name] for load in loads} for name in at}}
