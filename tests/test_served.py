"""Served traffic as a data source: the traffic log read by ingest's rules within a time window, and the split
by time (train on older requests, test on newer)."""
import json

import pandas as pd
import pytest

from thinkcount import UserError
from thinkcount.data.records import time_split
from thinkcount.data.served import served_corpus
from thinkcount.pipeline.config import Data


def log_line(i, prompt, thinking="So. Wait.", finish=None, **extra):
    return json.dumps({"id": str(i), "finish": 1_800_000_000.0 + i if finish is None else finish, "status": 200,
                       "instruction": prompt, "input": "", "content": f"{thinking}\n</think>\n\nok",
                       "model": "served-model", "prediction": {"score": 0.5 * i, "expected_counts": 2.0 + i},
                       **extra}) + "\n"


def data(folder, **window):
    return Data(source="served", sample_size=1, sample_workers=1, seed=0, served_dir=str(folder), **window)


def test_the_log_is_read_with_its_times_and_served_predictions_within_the_window(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "traffic-20270115T080000.jsonl").write_text(
        "".join(log_line(i, f"Question {i}?") for i in range(6))
        + log_line(6, None) + json.dumps({"id": "7", "finish": 1.0, "instruction": "x", "content": ""}) + "\n")
    (folder / "notes.txt").write_text("not a log")
    # 1_800_000_000 is 2027-01-15T08:00:00Z: the window keeps requests 2, 3 and 4.
    records, report = served_corpus(data(folder, served_since="2027-01-15T08:00:02",
                                         served_until="2027-01-15T08:00:05+00:00"))
    assert [(r["instruction"], r["time"], r["served_score"], r["served_expected"]) for r in records] == \
        [(f"Question {i}?", 1_800_000_000.0 + i, 0.5 * i, 2.0 + i) for i in (2, 3, 4)]
    assert report["invalid"] == {"no_prompt": 1, "no_trace": 1, "outside_time_window": 3}
    assert report["time_range"] == [1_800_000_002.0, 1_800_000_004.0]


def test_an_empty_log_folder_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="no traffic log"):
        served_corpus(data(tmp_path))
    with pytest.raises(Exception, match="ISO 8601"):
        data(tmp_path, served_since="yesterday")


def test_the_split_by_time_tests_on_the_newest_prompts():
    # 100 prompts asked once each at times 99..0 (the log's order need not be time's; one asked again at 99), and
    # a public trace without a time.
    rows = [{"worker_id": "log", "sample_id": i, "prompt_id": f"p{i}", "time": float(99 - i)} for i in range(100)]
    rows += [{"worker_id": "log", "sample_id": 100, "prompt_id": "p97", "time": 99.0},
             {"worker_id": "public", "sample_id": 0, "prompt_id": "q", "time": None}]
    split = time_split(pd.DataFrame(rows), seed=0, val_fraction=0.1, test_fraction=0.2)
    by_time = dict(zip([r["time"] for r in rows[:100]], split["split"][:100]))
    assert sorted(t for t, s in by_time.items() if s == "test") == list(range(80, 100))  # the newest 20 of 100
    assert sorted(t for t, s in by_time.items() if s == "val") == list(range(70, 80))
    assert split["split"].iloc[100] == "train"  # p97 was first asked at time 2: a repeat stays with its prompt
    assert split["split"].iloc[101] == "train"  # no time: public knowledge, always train
    with pytest.raises(UserError, match="split.by: time needs"):
        time_split(pd.DataFrame(rows).drop(columns="time"), 0, 0.1, 0.2)
