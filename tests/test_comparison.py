"""Across rows of the comparison: paired verdicts on known orderings, which rows are the references, and
that every method and baseline under the row budget trains on the same rows."""
import numpy as np
import pandas as pd
import pytest

from thinkcount.data.records import make_split, within_budget
from thinkcount.evaluate.comparison import add_paired_differences, add_sample_ceiling, best
from thinkcount.evaluate.metrics import UNDEFINED, RepeatedSamples, holm, paired_differences, sample_ceiling
from thinkcount.methods.training import train_val_rows
from thinkcount.pipeline.config import Evaluate


def test_paired_verdicts_on_known_orderings():
    rng = np.random.default_rng(0)
    target = np.arange(300, dtype=float)
    reference = target + rng.normal(0, 60, 300)  # a decent but imperfect ranking
    scores = {"same": reference, "perfect": target, "reversed": -target, "constant": np.ones(300)}
    out = paired_differences(scores, target, reference, n_boot=200, seed=1)
    assert out["same"] == {"difference": 0.0, "ci95": [0.0, 0.0], "p": 1.0, "p_holm": 1.0,
                           "verdict": "indistinguishable"}
    assert out["perfect"]["verdict"] == "better" and out["perfect"]["ci95"][0] > 0
    assert out["reversed"]["verdict"] == "worse" and out["reversed"]["ci95"][1] < 0
    assert out["constant"] == {"difference": None, "ci95": [None, None], "p": None, "p_holm": None,
                               "verdict": UNDEFINED}
    # No resample favours the reference: p is 0 for both, and stays 0 after Holm.
    assert out["perfect"]["p"] == out["perfect"]["p_holm"] == 0.0
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
    method_rows, _ = train_val_rows(frame, 50, 20, "m")
    baseline_rows = within_budget(frame[frame["split"] == "train"], 50)
    keys = lambda f: sorted(f["sample_id"])  # noqa: E731
    assert keys(method_rows) == keys(baseline_rows) and len(method_rows) == 50
    # the budget takes the split's shared order: the 50 train rows of lowest priority
    assert keys(method_rows) == sorted(frame[frame["split"] == "train"].nsmallest(50, "priority")["sample_id"])


def test_holm_multiplies_the_kth_smallest_p_by_m_minus_k_plus_one_and_keeps_them_monotone():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1: 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.5
    assert adjusted == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert holm({"a": 0.4, "b": 0.3}) == {"b": 0.6, "a": 0.6}


def test_a_difference_significant_alone_is_indistinguishable_among_many():
    rng = np.random.default_rng(5)
    target = np.arange(200, dtype=float)
    reference = target + rng.normal(0, 80, 200)
    slightly = target + np.random.default_rng(1).normal(0, 50, 200)  # a little less noisy: p 0.02 alone
    alone = paired_differences({"slightly": slightly}, target, reference, n_boot=300, seed=2)["slightly"]
    noise = {f"n{i}": reference + rng.normal(0, 1, 200) for i in range(19)}
    crowd = paired_differences({"slightly": slightly, **noise}, target, reference, n_boot=300, seed=2)["slightly"]
    assert alone["difference"] == crowd["difference"] > 0 and alone["p"] == crowd["p"]
    assert alone["p"] < 0.05 and alone["verdict"] == "better"
    assert crowd["p_holm"] == pytest.approx(min(1.0, crowd["p"] * 20)) and crowd["verdict"] == "indistinguishable"


def test_each_target_has_its_own_reference_baseline():
    rng = np.random.default_rng(1)
    test = pd.DataFrame({"counts": rng.integers(1, 50, 120), "wait_counts": rng.integers(1, 9, 120)})
    rows = [row("b_c", 0.3, "baseline"), row("b_w", 0.1, "baseline", target="wait_counts"), row("m01", 0.2),
            row("m11", 0.4, target="wait_counts"), row("m12", 0.3, target="wait_counts")]
    scores = {r["method"]: rng.normal(size=120) for r in rows}
    out = {r["method"]: r for r in add_paired_differences(rows, scores, test, Evaluate(bootstrap=50, seed=0))}
    assert out["m01"]["vs_best_baseline"]["reference"] == "b_c"
    assert out["m11"]["vs_best_baseline"]["reference"] == out["m12"]["vs_best_baseline"]["reference"] == "b_w"
    assert out["m12"]["vs_best_method"]["reference"] == "m11" and "vs_best_method" not in out["m11"]


def repeated(n_prompts, samples, noise, seed=0):
    """Prompts with a true effort, answered by two models, each sample's counts that effort plus noise."""
    rng = np.random.default_rng(seed)
    rows = [(f"p{p}", m, effort, max(1, round(np.exp(effort + rng.normal(0, noise)))))
            for p, effort in enumerate(rng.uniform(0, 4, n_prompts)) for m in ("a", "b") for _ in range(samples)]
    return pd.DataFrame(rows, columns=["prompt_id", "model", "effort", "counts"])


def test_repeated_samples_hold_out_each_repeated_pair_s_first_row_whatever_the_target():
    test = pd.DataFrame({"prompt_id": ["p1", "p1", "p1", "p2", "p2", "p2"], "model": ["a", "a", "b", "a", "a", "a"]})
    samples = RepeatedSamples.of(test)
    assert samples.held.tolist() == [0, 3]  # p1 with b has one sample: not held out
    values = np.array([1.0, 3.0, 5.0, 2.0, 4.0, 6.0])
    assert samples.others_mean(values).tolist() == [3.0, 5.0]  # row 0: 3; row 3: (4 + 6) / 2
    assert samples.pair_mean(values).tolist() == [2.0, 5.0, 4.0]  # pairs in order of first appearance


def test_the_sample_ceiling_falls_with_sampling_noise_and_is_undefined_without_repeats():
    def ceiling(test):
        return sample_ceiling(RepeatedSamples.of(test), test, "counts", 100, 0)
    quiet, loud = ceiling(repeated(60, 3, 0.1)), ceiling(repeated(60, 3, 1.5))
    assert quiet["pairs"] == loud["pairs"] == 120
    assert quiet["kendall_tau"] > 0.8 > 0.5 > loud["kendall_tau"] > 0
    assert quiet["kendall_tau_ci95"][0] <= quiet["kendall_tau"] <= quiet["kendall_tau_ci95"][1]
    assert ceiling(repeated(60, 1, 0.1)) is None  # one sample per pair
    assert ceiling(repeated(9, 3, 0.1)) is None  # 18 pairs, fewer than 20
    assert ceiling(pd.DataFrame({"counts": [1, 2, 3]})) is None  # no prompt ids


def test_a_score_equal_to_the_true_effort_nears_the_ceiling_and_is_judged_on_its_rows():
    test = repeated(80, 3, 0.8, seed=3)
    rows = [row("effort", 0.0), row("noise", 0.0)]
    scores = {"effort": test["effort"].to_numpy(), "noise": np.random.default_rng(0).normal(size=len(test))}
    rows, ceilings = add_sample_ceiling(rows, scores, test, Evaluate(bootstrap=100, seed=0))
    effort, noise = rows
    # The true effort ranks held-out samples at least about as well as the mean of two other noisy samples.
    assert effort["share_of_ceiling"] > 0.9 and abs(noise["share_of_ceiling"]) < 0.3
    assert effort["kendall_tau_mean"] > ceilings["counts"]["kendall_tau"] > noise["kendall_tau_mean"]
