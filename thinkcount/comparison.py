"""Across rows of the comparison: each method's paired tau difference to the best baseline and to the best
method (the same bootstrap resamples for both sides), and what its ranking gains a router."""
import pandas as pd

from thinkcount.data import KEY
from thinkcount.evaluation import paired_differences
from thinkcount.jsonl import load_jsonl
from thinkcount.serving import serving_gains


def test_scores(names, frame):
    """{name: scores of the test prompts} in the order of frame's test rows (frame: counts joined with the split)."""
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    scores = {}
    for name in names:
        predictions = pd.DataFrame(load_jsonl(f"data/predictions/{name}.jsonl"))
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
    gains = serving_gains(test["trace_chars"].to_numpy(), {r["method"]: scores[r["method"]] for r in rows
                                                            if r["method"] in scores},
                          serving["load"], serving["repeats"], serving["seed"])
    for r in rows:
        r["serving"] = gains.get(r["method"])
    return rows
