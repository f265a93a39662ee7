
import numpy as np
import pandas as pd
import pytest

from thinkcount.data.features import feature_set
from thinkcount.evaluate import metrics
from thinkcount.evaluate.metrics import (Resamples, bootstrap_tau, eta_squared, kendall, leakage_audit, yardstick,
                                         yardstick_both)
from thinkcount.evaluate.report import markdown, summary_rows
from thinkcount.methods.labelconfig import LabelConfig


def truth(n=300, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 200, n)
    return pd.DataFrame({"counts": counts, "wait_counts": 1 + counts // 20})


def test_yardstick_rewards_a_good_ranking_and_not_a_random_one():
    t = truth()
    perfect = yardstick(t["counts"], t["counts"], t, "counts", n_boot=100)
    assert perfect["kendall_tau"] == pytest.approx(1.0) and perfect["auc_top10"] == pytest.approx(1.0)
    assert perfect["mae_counts"] == 0
    noise = np.random.default_rng(1).random(len(t))
    rand = yardstick(noise, noise, t, "counts", n_boot=100)
    assert abs(rand["kendall_tau"]) < 0.1 and rand["kendall_tau_ci95"][0] < 0 < rand["kendall_tau_ci95"][1]
    assert abs(rand["kendall_tau_wait_counts"]) < 0.1  # defined, and as unrelated to noise as counts


def test_yardstick_reports_the_clean_part_separately():
    t = truth()
    score = np.where(t["counts"] > 130, -1.0, t["counts"])  # wrong only on the noisy tail
    both = yardstick_both(score, score, t, "counts", max_counts=130, n_boot=50, seed=0)
    assert both["clean"]["kendall_tau"] == pytest.approx(1.0)
    assert both["all"]["kendall_tau"] < 0.9
    assert both["clean"]["n"] == (t["counts"] <= 130).sum()


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    t = truth()
    score = t["counts"] + np.random.default_rng(2).normal(0, 60, len(t))
    lo, hi = bootstrap_tau(score.to_numpy(), t["counts"].to_numpy(), 200, seed=3)
    assert lo < yardstick(score, score, t, "counts", n_boot=10)["kendall_tau"] < hi
    assert [lo, hi] == bootstrap_tau(score.to_numpy(), t["counts"].to_numpy(), 200, seed=3)


@pytest.mark.parametrize("pair_form_max_rows", [4000, 2])  # the pair form, and sorting each resample
def test_resampled_taus_match_hand_counted_pairs(monkeypatch, pair_form_max_rows):
    """x = [1, 2, 3, 3], y = [1, 3, 2, 2]: 3 concordant, 2 discordant, one pair tied in both, so tau-b is
    (3 - 2) / sqrt(5 * 5) = 0.2; rows [0, 0, 1, 2]: 4 concordant, 1 discordant, one joint tie: 3 / 5 = 0.6;
    rows [2, 3, 2, 3]: x constant, tau undefined."""
    monkeypatch.setattr(metrics, "PAIR_FORM_MAX_ROWS", pair_form_max_rows)
    rows = [np.array(r) for r in ([0, 1, 2, 3], [0, 0, 1, 2], [2, 3, 2, 3])]
    taus = Resamples([1, 3, 2, 2], rows).taus([1, 2, 3, 3])
    assert taus[0] == pytest.approx(0.2) and taus[1] == pytest.approx(0.6) and taus[2] is None


def test_resampled_taus_give_scipys_floats_on_tied_data_across_blocks():
    """Two scores on the same resamples: what the resamples keep for the target serves each unchanged."""
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 6, 700).astype(float), rng.normal(size=700).round(1)  # 700 rows: two blocks of 512
    other = -x + rng.normal(size=700).round()
    resamples = Resamples(y, [rng.integers(0, 700, 700) for _ in range(40)])
    for score in (x, other, x):
        assert resamples.taus(score) == [kendall(score[idx], y[idx]) for idx in resamples.indices]


def test_eta_squared():
    values = np.array([1, 1, 10, 10.0])
    assert eta_squared(values, np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert eta_squared(values, np.array([0, 1, 0, 1])) == pytest.approx(0.0)


def test_leakage_audit_detects_labels_derived_from_prompt_features(params):
    features = feature_set(params.features, "seed_kmeans")
    texts = [f"Why is {i} so? How?" if i % 2 else f"List {i} things." for i in range(200)]
    labels = np.array([i % 2 for i in range(200)])
    assert leakage_audit(texts[:150], labels[:150], texts[150:], labels[150:], 0, features) == 1.0
    shuffled = np.random.default_rng(0).permutation(labels)
    assert leakage_audit(texts[:150], shuffled[:150], texts[150:], shuffled[150:], 0, features) < 0.75


def metrics_file(name, tau, task="classification"):
    y = {"kendall_tau": tau, "kendall_tau_ci95": [tau - 0.1, tau + 0.1], "spearman": tau, "mae_counts": 3.0,
         "auc_top10": 0.7, "share_of_oracle": tau / 0.5}
    return {"method": name, "task": task, "loss": "ce", "labels": "bins", "encoder": "e", "target": "counts",
            "native": {"f1_macro": 0.9, "accuracy": 0.95}, "yardstick": {"all": y, "clean": y}}


def test_comparison_is_sorted_by_tau_and_shows_the_seed_figure():
    rows = summary_rows([metrics_file("a", 0.2), metrics_file("b", 0.4), {"method": "oracle", "available": False}],
                        {"a": "F1-macro 0.979"})
    assert [r["method"] for r in rows] == ["b", "a"]
    table = markdown(rows, "make run")
    assert table.index("| b |") < table.index("| a |")
    assert "F1-macro 0.979" in table and "0.200 [0.100, 0.300]" in table


def test_classifiers_rank_by_expected_log1p_counts_not_expected_counts():
    from thinkcount.methods.inference import interpret
    stats = [{"counts": {"mean": 2.0, "log1p_mean": 1.0}}, {"counts": {"mean": 20.0, "log1p_mean": 3.0}},
             {"counts": {"mean": 600.0, "log1p_mean": 4.0}}]  # the top bin: loops, prompt-independent
    config = LabelConfig(scheme="equal_freq", target="counts", task="classification", label_stats=stats)
    probs = np.array([[1e-9, 1.0, 1e-9],     # surely a middle-bin prompt
                      [0.95, 1e-9, 0.05]])   # an easy prompt with a 5% chance of a loop
    out = interpret(np.log(probs), config)
    assert out["expected_counts"] == pytest.approx([20.0, 0.95 * 2 + 0.05 * 600], abs=1e-6)  # 20 < 31.9
    assert out["score"] == pytest.approx([3.0, 0.95 * 1 + 0.05 * 4], abs=1e-6)  # 3.0 > 1.15: the order flips


def test_with_a_sample_ceiling_the_table_shares_it_and_lists_families_with_their_patterns_escaped():
    rows = summary_rows([metrics_file("a", 0.2), metrics_file("b", 0.4)], {})
    rows[0].update(share_of_ceiling=0.5, kendall_tau_mean=0.45, train_models="(?i)a|b",
                   families={"r1": {"n": 9, "kendall_tau": 0.3, "kendall_tau_ci95": [0.1, 0.5]}})
    ceilings = {"counts": {"kendall_tau": 0.8, "kendall_tau_ci95": [0.7, 0.9], "pairs": 30}, "wait_counts": None}
    table = markdown(rows, "make real", ceilings=ceilings)
    assert "| share of sample ceiling | tau vs sample mean |" in table and "share of oracle" not in table
    assert "Sample ceiling on `counts`: tau 0.800 [0.700, 0.900]" in table and "over 30 (prompt, model) pairs" in table
    assert "| b | 0.400 [0.300, 0.500] |" in table and "| 0.50 | 0.450 |" in table
    assert "| b | `(?i)a\\|b` | 0.300 [0.100, 0.500] (9) |" in table
    assert "share of oracle" in markdown(rows, "make run") and "By model family" in markdown(rows, "make run")
