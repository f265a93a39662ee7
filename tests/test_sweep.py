"""The seed sweep's summary, on a hand-made `dvc exp show --json`."""
import json

import pytest

from thinkcount.ops.sweep import (best_first, differences, differences_markdown, markdown, queue_command,
                                  references_by_target, runs, summarise)


def entry(seed, taus):
    params = {"params.yaml": {"data": {"data": {"seed": seed}, "split": {"seed": seed}, "train": {"seed": seed}}}}
    metrics = {f"metrics/methods/{m}.json": {"data": {"tau": t, "auc_top10": 0.5}} for m, t in taus.items()}
    metrics["metrics/summary.json"] = {"data": {"tau": 9.0}}  # not a headline file: ignored
    return {"params": params, "metrics": metrics}


SHOW = [
    {"rev": "workspace", "data": entry(42, {"a": 0.40, "b": 0.30}), "experiments": None},
    {"rev": "abc", "data": entry(42, {"a": 0.40, "b": 0.30}), "experiments": [
        {"revs": [{"rev": "e2", "name": "seeds-2", "data": entry(2, {"a": 0.36, "b": 0.20})}]},
        {"revs": [{"rev": "e1", "name": "seeds-1", "data": entry(1, {"a": 0.44, "b": None})}]},
        {"revs": [{"rev": "e3", "name": "other", "data": entry(7, {"a": 0.99, "b": 0.99})}]},
        {"revs": [{"rev": "e4", "name": "seeds-3", "data": entry(3, {})}]},  # no headline metrics
        {"executor": {"state": "running"}, "revs": [{"rev": "e5", "name": "seeds-4", "data": entry(4, {"a": 0.4})}]},
        {"executor": {"state": "success"}, "revs": [{"rev": "e6", "name": "seeds-5", "data": entry(5, {"a": 0.4})}]},
        {"revs": [{"rev": "e7", "name": "seeds-10", "data": entry(10, {"a": 0.4})}]},
    ]},
    {"rev": "older", "data": entry(42, {"a": 0.1}), "experiments": [  # seeds-1 run again on the older commit
        {"revs": [{"rev": "e8", "name": "seeds-1", "data": entry(1, {"a": 0.11, "b": 0.11})}]},
    ]},
]


def test_runs_are_the_workspace_and_the_sweep_experiments_only():
    found = runs(SHOW)
    assert [(name, seeds) for name, seeds, _ in found] == [("workspace", (42, 42, 42)), ("seeds-1", (1, 1, 1)),
                                                           ("seeds-2", (2, 2, 2)), ("seeds-5", (5, 5, 5)),
                                                           ("seeds-10", (10, 10, 10))]
    assert found[1][2] == {"a": 0.44, "b": None}  # the newest commit's seeds-1, counted once


def test_summary_is_mean_and_spread_over_defined_taus():
    rows = {r["method"]: r for r in summarise(runs(SHOW)[:3])}
    assert rows["a"]["mean"] == pytest.approx(0.40) and rows["a"]["sd"] == pytest.approx(0.04)
    assert (rows["a"]["min"], rows["a"]["max"]) == (0.36, 0.44)
    assert rows["b"]["n"] == 2 and rows["b"]["mean"] == pytest.approx(0.25)  # undefined tau left out, not 0
    assert rows["b"]["sd"] == pytest.approx(0.0707107, abs=1e-6)
    table = markdown(runs(SHOW)[:3], summarise(runs(SHOW)[:3]))
    assert table.index("| a |") < table.index("| b |")
    assert "| b | 0.300 | undefined | 0.200 | 0.250 |" in table


def test_an_undefined_mean_sorts_last():
    rows = [{"method": "x", "mean": 0.3}, {"method": "y", "mean": None}, {"method": "z", "mean": 0.5}]
    assert [r["method"] for r in best_first(rows)] == ["z", "x", "y"]


def test_differences_to_the_reference_are_paired_within_a_run():
    found = runs(SHOW)[:3]
    (a,) = differences(found, {"a": "b"})
    assert a["method"] == "a" and a["diffs"][1] is None  # b undefined in seeds-1: no difference, not 0.44
    assert a["diffs"][0] == pytest.approx(0.10) and a["diffs"][2] == pytest.approx(0.16)
    assert a["mean"] == pytest.approx(0.13) and (a["ahead"], a["n"]) == (2, 2)
    assert "| a | b | +0.100 | undefined | +0.160 | +0.130 | 2 of 2 |" in differences_markdown(found, [a])


def test_each_seed_set_is_one_named_queued_experiment():
    assert queue_command(3) == ["dvc", "exp", "run", "--queue", "--name", "seeds-3", "-S", "data.seed=3",
                                "-S", "split.seed=3", "-S", "train.seed=3"]


def test_each_method_is_compared_with_the_baseline_the_comparison_chose_on_its_target(tmp_path):
    rows = [{"method": "m01", "kind": None, "target": "counts", "vs_best_baseline": {"reference": "b_surface"}},
            {"method": "m11", "kind": None, "target": "wait_counts",
             "vs_best_baseline": {"reference": "b_surface_wait"}},
            {"method": "m13_length", "kind": None, "target": "think_chars",
             "vs_best_baseline": {"reference": "b_surface_length"}},
            {"method": "b_tfidf", "kind": "tfidf", "target": "counts", "vs_best_baseline": {"reference": "b_surface"}},
            {"method": "b_surface", "kind": "surface", "target": "counts", "vs_best_baseline": None}]
    (tmp_path / "summary.json").write_text(json.dumps({"rows": rows}))
    assert references_by_target(tmp_path / "summary.json") == {
        "m01": "b_surface", "m11": "b_surface_wait", "m13_length": "b_surface_length"}
