"""Across rows of the comparison: paired verdicts on known orderings, which rows are the references, and
that every method and baseline under the row budget trains on the same rows."""
import numpy as np
import pandas as pd

from thinkcount.data.records import make_split, within_budget
from thinkcount.evaluate.comparison import best
from thinkcount.evaluate.metrics import UNDEFINED, paired_differences
from thinkcount.methods.training import train_val_rows


def test_paired_verdicts_on_known_orderings():
    rng = np.random.default_rng(0)
    target = np.arange(300, dtype=float)
    reference = target + rng.normal(0, 60, 300)  # a decent but imperfect ranking
    scores = {"same": reference, "perfect": target, "reversed": -target, "constant": np.ones(300)}
    out = paired_differences(scores, target, reference, n_boot=200, seed=1)
    assert out["same"] == {"difference": 0.0, "ci95": [0.0, 0.0], "verdict": "indistinguishable"}
    assert out["perfect"]["verdict"] == "better" and out["perfect"]["ci95"][0] > 0
    assert out["reversed"]["verdict"] == "worse" and out["reversed"]["ci95"][1] < 0
    assert out["constant"] == {"difference": None, "ci95": [None, None], "verdict": UNDEFINED}
    # tau is 1 for the perfect ranking and -1 for the reversed one, so their differences to the same
    # reference t are 1 - t and -1 - t: 2 apart.
    assert out["perfect"]["difference"] - out["reversed"]["difference"] == 2.0


def row(method, tau, task="regression", target="counts", kind=None, rule="budget"):
    return {"method": method, "kendall_tau": tau, "task": task, "target": target, "kind": kind,
            "train_rows_rule": rule}


def test_the_references_are_the_best_baseline_on_the_methods_rows_and_the_best_count_method():
    rows = [row("oracle", 0.51, "baseline", kind="oracle"), row("b_all", 0.46, "baseline", kind="tfidf", rule="all"),
            row("b_tfidf", 0.40, "baseline", kind="tfidf"), row("b_length", 0.33, "baseline", kind="length"),
            row("m11_wait", 0.60, target="wait_counts"), row("m13", 0.44, "ranking"), row("m01", 0.43),
            row("m99", None)]
    assert best(rows, baseline=True) == "b_tfidf"  # not the oracle, nor the reference row on all train rows
    assert best(rows, baseline=False) == "m13"  # not a wait method scored on another target, nor an undefined tau
    assert best([r for r in rows if r["task"] != "baseline"][:1], baseline=True) is None


def test_every_method_and_baseline_under_the_budget_trains_on_the_same_rows():
    rng = np.random.default_rng(0)
    counts = pd.DataFrame({"worker_id": 0, "sample_id": np.arange(400), "counts": rng.integers(1, 90, 400)})
    frame = counts.merge(make_split(counts, 7, 0.1, 0.1, 5), on=["worker_id", "sample_id"])
    frame["text"], frame["label"] = "a prompt", 0.0
    method_rows, _ = train_val_rows(frame, {"max_train_rows": 50}, {"max_val_rows": 20}, "m")
    baseline_rows = within_budget(frame[frame["split"] == "train"], 50)
    keys = lambda f: sorted(f["sample_id"])  # noqa: E731
    assert keys(method_rows) == keys(baseline_rows) and len(method_rows) == 50
    # the budget takes the split's shared order: the 50 train rows of lowest priority
    assert keys(method_rows) == sorted(frame[frame["split"] == "train"].nsmallest(50, "priority")["sample_id"])
