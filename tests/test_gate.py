"""The CI gate fails when any method or baseline loses its skill, and only then."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from thinkcount.evaluate.metrics import classification_metrics, yardstick
from thinkcount.evaluate.report import headline, summary_rows
from thinkcount.ops.gate import check
from thinkcount.ops.gate import main as gate_main
from thinkcount.ops.gate import no_skill_lines, regenerate

FLOORS = {"n_test": 120, "tolerance": 0.1, "no_skill": no_skill_lines(120),
          "by_design": {"m02": {"metrics": ["native.accuracy"], "why": "one bin holds almost every prompt"}},
          "floors": {"m01": {"tau": 0.40, "auc_top10": 0.85}, "m02": {"native.accuracy": 0.98}}}


def write_method(root, name, tau, auc, accuracy=None):
    (root / "methods").mkdir(parents=True, exist_ok=True)
    (root / "eval").mkdir(exist_ok=True)
    head = {"auc_top10": auc, "target": "counts"} | ({} if tau is None else {"tau": tau})
    (root / "methods" / f"{name}.json").write_text(json.dumps(head))
    detail = {"yardstick": {"all": {"n": 120}}} | ({} if accuracy is None else {"native": {"accuracy": accuracy}})
    (root / "eval" / f"{name}.json").write_text(json.dumps(detail))


def test_no_skill_lines_are_two_standard_errors_above_chance():
    # n = 120: tau's SE is sqrt(2 * 245 / (9 * 120 * 119)) = 0.0617; the AUC's, with 12 of 120 positive,
    # sqrt(121 / (12 * 12 * 108)) = 0.0882.
    assert no_skill_lines(120) == {"tau": 0.123, "auc_top10": 0.676}


@pytest.mark.parametrize("m01, m02_accuracy, failure", [
    ((0.35, 0.80), 0.95, None),                                           # within the tolerance
    ((0.29, 0.80), 0.95, "m01: tau 0.290 < 0.300 (floor 0.400 - tolerance)"),
    ((0.35, 0.60), 0.95, "m01: auc_top10 0.600 < 0.750 (floor 0.850 - tolerance)"),
    ((None, 0.80), 0.95, "m01: tau undefined (constant scores)"),
    ((0.35, 0.80), 0.40, "m02: native.accuracy 0.400 < 0.880 (floor 0.980 - tolerance)"),
])
def test_gate_passes_or_names_the_failure(tmp_path, m01, m02_accuracy, failure):
    write_method(tmp_path, "m01", *m01)
    write_method(tmp_path, "m02", 0.2, 0.5, accuracy=m02_accuracy)  # a modest ranking is m02's design
    assert check(tmp_path, FLOORS) == ([] if failure is None else [failure])


def test_a_low_floor_does_not_pass_a_model_without_skill(tmp_path):
    floors = {**FLOORS, "floors": {**FLOORS["floors"], "m01": {"tau": 0.05, "auc_top10": 0.5}}}
    write_method(tmp_path, "m01", 0.06, 0.62)
    write_method(tmp_path, "m02", 0.2, 0.5, accuracy=0.99)
    assert check(tmp_path, floors) == ["m01: tau 0.060 <= 0.123 (the no-skill line)",
                                       "m01: auc_top10 0.620 < 0.676 (the no-skill line)"]


def test_a_method_without_floor_or_metrics_fails(tmp_path, capsys):
    write_method(tmp_path, "m01", 0.45, 0.9)
    write_method(tmp_path, "m99", 0.45, 0.9)
    (tmp_path / "floors.json").write_text(json.dumps(FLOORS))
    assert gate_main([str(tmp_path), str(tmp_path / "floors.json")]) == 1
    out = capsys.readouterr().out
    assert "FAIL m02: no metrics" in out and "FAIL m99: no floor" in out


def noise_run(root, floors, seed=0):
    """Every floored method's metrics computed from noise scores (and noise labels), as the gate reads them."""
    rng = np.random.default_rng(seed)
    n = floors["n_test"]
    truth = pd.DataFrame({"counts": np.round(rng.lognormal(2, 1, n)) + 1})
    truth["wait_counts"] = 1 + truth["counts"] // 10
    bins = np.minimum(truth["counts"].to_numpy() // 100, 9).astype(int)  # equal-width-like: mostly bin 0
    for name in floors["floors"]:
        score = rng.normal(size=n)
        y = yardstick(score, np.exp(score), truth, "counts", n_boot=20)
        row = summary_rows([{"method": name, "task": "t", "target": "counts", "yardstick": {"all": y, "clean": y}}],
                           {})[0]
        (root / "methods").mkdir(parents=True, exist_ok=True)
        (root / "eval").mkdir(exist_ok=True)
        (root / "methods" / f"{name}.json").write_text(json.dumps(headline(row)))
        native = classification_metrics(rng.integers(0, 10, n), bins, 10, [str(i) for i in range(10)])
        (root / "eval" / f"{name}.json").write_text(json.dumps({"yardstick": {"all": y}, "native": native}))


def test_the_committed_floors_fail_every_method_on_noise_scores(tmp_path, params):
    floors = json.loads((ROOT / "metrics/ci_floor.json").read_text())
    assert set(floors["floors"]) == set(params.methods) | set(params.baselines)  # every row has a floor entry
    # The one row gated on nothing: the first-word control, at chance on the CI profile by design.
    unguarded = {n for n, d in floors["by_design"].items() if not d.get("ranks", True) and not d["metrics"]}
    assert unguarded == {"b_first_word"}
    for seed in range(3):
        noise_run(tmp_path / str(seed), floors, seed)
        failed = {f.split(":")[0] for f in check(tmp_path / str(seed), floors)}
        assert failed == set(floors["floors"]) - unguarded, seed


def test_regenerate_records_the_commit_and_refuses_a_floor_without_skill(tmp_path):
    write_method(tmp_path, "m01", 0.45, 0.9)
    write_method(tmp_path, "m02", 0.2, 0.5, accuracy=0.99)
    (tmp_path / "floors.json").write_text(json.dumps(FLOORS))
    out = regenerate(tmp_path, tmp_path / "floors.json")
    assert out["floors"] == {"m01": {"tau": 0.45, "auc_top10": 0.9}, "m02": {"native.accuracy": 0.99}}
    assert len(out["commit"]) == 40 and out["no_skill"] == {"tau": 0.123, "auc_top10": 0.676}
    write_method(tmp_path, "m01", 0.10, 0.9)
    with pytest.raises(SystemExit, match="m01 has tau 0.1, below the no-skill line"):
        regenerate(tmp_path, tmp_path / "floors.json")
    write_method(tmp_path, "m01", 0.45, 0.9)
    write_method(tmp_path, "m02", -0.29, 0.5, accuracy=0.99)  # reversed, however accurate
    with pytest.raises(SystemExit, match="m02 has tau -0.29, at or below the no-skill line 0.123"):
        regenerate(tmp_path, tmp_path / "floors.json")


def test_only_a_row_listed_as_not_ranking_may_sit_at_chance_and_it_still_needs_a_defined_tau(tmp_path):
    floors = {**FLOORS, "by_design": {**FLOORS["by_design"], "m02": {
        "metrics": ["native.accuracy"], "ranks": False, "why": "one bin holds almost every prompt"}}}
    write_method(tmp_path, "m01", 0.45, 0.9)
    write_method(tmp_path, "m02", -0.18, 0.5, accuracy=0.99)
    assert check(tmp_path, floors) == []  # reversed, but listed: gated on its accuracy alone
    assert check(tmp_path, FLOORS) == ["m02: tau -0.180 <= 0.123 (the no-skill line)"]
    write_method(tmp_path, "m02", None, 0.5, accuracy=0.99)
    assert check(tmp_path, floors) == ["m02: tau undefined (constant scores)"]
    write_method(tmp_path, "m02", -0.18, 0.5, accuracy=0.99)
    (tmp_path / "floors.json").write_text(json.dumps(floors))
    assert regenerate(tmp_path, tmp_path / "floors.json")["floors"]["m02"] == {"native.accuracy": 0.99}
