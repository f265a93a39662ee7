"""Across rows of the comparison: each method's paired tau difference to the best baseline and to the best
method (the same bootstrap resamples for both sides), and what its ranking gains a router."""
import numpy as np
import pandas as pd

from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl
from thinkcount.data.records import KEY
from thinkcount.evaluate.engine_sim import Engine, sweep, tokens
from thinkcount.evaluate.metrics import paired_differences

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


def best(rows, baseline):
    """The best row by tau on counts among the baselines trained on the methods' rows (baseline=True) or the methods."""
    pool = [r for r in rows if r["kendall_tau"] is not None and r["target"] == "counts"
            and (r["task"] == "baseline") == baseline and r.get("kind") != "oracle"
            and r.get("train_rows_rule", "budget") == "budget"]
    return max(pool, key=lambda r: r["kendall_tau"])["method"] if pool else None


def add_paired_differences(rows, scores, test, ev):
    references = {"vs_best_baseline": best(rows, baseline=True), "vs_best_method": best(rows, baseline=False)}
    for key, reference in references.items():
        if reference not in scores:
            continue
        for target in {r["target"] for r in rows}:
            names = [r["method"] for r in rows if r["target"] == target and r["method"] in scores]
            diffs = paired_differences({n: scores[n] for n in names}, test[target], scores[reference],
                                       ev["bootstrap"], ev["seed"])
            for r in rows:
                if r["method"] in diffs and r["method"] != reference:
                    r[key] = {"reference": reference, **diffs[r["method"]]}
    return rows


def add_serving(rows, scores, test, serving):
    """The test prompts served by the engine model at every load of the sweep, first come first served, by
    their true lengths and shortest-predicted-first by each row's score. Each row gets its mean and p90
    latency relative to first come first served at serving.load; the whole sweep is returned beside."""
    engine = Engine(**{key: serving[key] for key in ENGINE_KEYS})
    prompt = tokens(test["text"].str.len(), serving["chars_per_token"])
    output = tokens(test["trace_chars"], serving["chars_per_token"])
    ranked = {r["method"]: scores[r["method"]] for r in rows
              if r["method"] in scores and np.isfinite(scores[r["method"]]).all()}
    loads = sorted(set(serving["sweep"]) | {serving["load"]})
    result = sweep(engine, prompt, output, ranked, loads, serving["repeats"], serving["seed"])
    at = result[serving["load"]]
    for r in rows:
        s = at.get(r["method"])
        r["serving"] = None if s is None else {"mean": s["mean"]["vs_fcfs"], "p90": s["p90"]["vs_fcfs"]}
    return rows, {"engine": {key: serving[key] for key in ENGINE_KEYS}, "loads": loads,
                  "policies": {name: {str(load): result[load][name] for load in loads} for name in at}}
