"""Held-out groups (thinkcount/evaluate/heldout.py, stages/heldout.py): a finalist trained without one source or one
model family and scored on it, beside prompt length on the same traces."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import kendalltau

from conftest import run_stage, tiny_params
from thinkcount.core.jsonl import write_jsonl
from thinkcount.evaluate.heldout import fold, held_out_groups, summary


def corpus(n=120, seed=0):
    """Two sources of n traces each: effort follows the number of questions; models of two families; every tenth
    trace truncated."""
    rng = np.random.default_rng(seed)
    rows = []
    for source in ("own__alpha", "own__beta"):
        for i in range(n):
            questions = int(rng.integers(1, 5))
            rows.append({"worker_id": f"{source}/f.jsonl", "sample_id": i, "prompt_id": f"{source}{i}",
                         "text": f"{source} item {i}. " + "Why is that so? " * questions,
                         "model": ("qwen/qwen3-8b", "deepseek/deepseek-r1")[i % 2], "truncated": i % 10 == 9,
                         "counts": 1 + 5 * questions + int(rng.integers(0, 3)), "wait_counts": 1,
                         "think_chars": 100, "reasoning_tokens": None, "trace_chars": 100,
                         "split": ("train", "train", "val", "test", "train")[i % 5],
                         "priority": int(rng.integers(0, 10**6))})
    return pd.DataFrame(rows)


def test_a_fold_tests_on_the_held_out_group_s_complete_traces_and_trains_on_the_rest():
    frame = corpus()
    labels, groups = held_out_groups(frame, "source", min_traces=100, most=4)
    assert groups == ["own/alpha", "own/beta"]  # 108 complete traces each; ties by name
    one = fold(frame, labels, "own/alpha", max_test=1000, seed=0)
    test = one[one["split"] == "test"]
    assert len(test) == 108 and set(test["worker_id"]) == {"own__alpha/f.jsonl"} and not test["truncated"].any()
    rest = one[one["split"] != "test"]
    assert set(rest["worker_id"]) == {"own__beta/f.jsonl"} and len(rest) == 120
    assert (rest["split"] == "val").sum() == 24  # the shared split's val rows stay val; its test rows train
    capped = fold(frame, labels, "own/alpha", max_test=50, seed=0)
    assert (capped["split"] == "test").sum() == 50
    _, families = held_out_groups(frame, "family", min_traces=100, most=1)
    assert families == ["deepseek-r1"] or families == ["qwen3"]
    assert held_out_groups(frame, "source", min_traces=200, most=4)[1] == []


def test_the_summary_names_the_groups_where_the_method_is_below_prompt_length():
    folds = {"a": {"method": {"within": 0.3, "pooled": 0.2}, "prompt length": {"within": 0.1, "pooled": 0.1}},
             "b": {"method": {"within": 0.0, "pooled": 0.1}, "prompt length": {"within": 0.2, "pooled": 0.3}}}
    out = summary(folds)
    assert out["mean"]["method"]["within"] == pytest.approx(0.15) and out["below_length"] == ["b"]
    folds["b"]["method"]["within"] = None  # undefined is not 0: the mean is undefined too
    assert summary(folds)["mean"]["method"]["within"] is None


@pytest.mark.slow
def test_the_stage_trains_once_per_held_out_group_and_scores_it(tmp_path, params, tiny_encoders):
    frame = corpus()
    spec = tiny_params(params, {"bert": tiny_encoders["bert"]})
    data = spec.model_dump(mode="json")
    data["heldout"] = {"methods": ["m13_rank"], "sources": 2, "families": 1, "min_traces": 100, "max_test": 80,
                       "seed": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    columns = ["worker_id", "sample_id", "split", "priority"]
    write_jsonl(tmp_path / "data/counts.jsonl", frame.drop(columns=["split", "priority"]).to_dict("records"))
    write_jsonl(tmp_path / "data/split.jsonl", frame[columns].to_dict("records"))
    write_jsonl(tmp_path / "data/variants/all.jsonl", frame[["worker_id", "sample_id"]].to_dict("records"))
    proc = run_stage("heldout", tmp_path, "m13_rank")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "metrics/heldout/m13_rank.json").read_text())
    assert list(result["source"]["folds"]) == ["own/alpha", "own/beta"] and len(result["family"]["folds"]) == 1
    # prompt length on the fold's test traces: the seeded sample of 80 of own/alpha's 108 complete traces
    labels, _ = held_out_groups(frame, "source", 100, 2)
    test = fold(frame, labels, "own/alpha", 80, 0).query("split == 'test'")
    pooled = kendalltau(test["text"].str.len(), test["counts"]).statistic
    assert result["source"]["folds"]["own/alpha"]["prompt length"]["pooled"] == pytest.approx(pooled)
    assert result["source"]["folds"]["own/alpha"]["method"]["within"] is not None


def test_the_recommended_finalist_has_the_best_held_out_mean_and_the_report_leads_with_it():
    from thinkcount.evaluate.report import markdown

    def result(a, b, length):
        folds = {g: {"method": {"within": t, "pooled": t}, "prompt length": {"within": length, "pooled": length}}
                 for g, t in (("s1", a), ("s2", b))}
        return {"source": {"folds": folds, **summary(folds)}, "family": {"folds": {}, "undefined": "none"}}

    heldout = {"m13_rank": result(0.10, 0.30, 0.15), "m13_model": result(0.25, 0.05, 0.15)}
    from thinkcount.evaluate.heldout import recommend
    rec = recommend(heldout)
    assert rec["method"] == "m13_rank" and rec["held_out_tau"] == pytest.approx(0.20)
    assert rec["below_length"] == ["s1"]
    text = markdown([], "make real", heldout=heldout, recommended=rec)
    assert text.index("## Held-out sources") < text.index("## In-source test split")
    assert "| m13_model | 0.250 / 0.250 | 0.050 / 0.050 | 0.150 / 0.150 |" in text
    assert "Recommended for serving: **m13_rank**" in text and "does not beat prompt length on s1" in text
    assert recommend({"m13_rank": {"source": {"folds": {}, "undefined": "no source"}}}) is None
    assert "Held-out" not in markdown([], "make run")
