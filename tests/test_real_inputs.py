"""Real exports and hostile input: every case is either kept (with a count in the report) or stops
with one sentence. One table per layer: ingestion, counting, split, labels, baselines, params."""
import gzip
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import params_mapping, tiny_rows
from thinkcount import UserError
from thinkcount.data.corpus import validate_records
from thinkcount.data.counting import count_waits, keyword_pattern, wait_pattern
from thinkcount.data.records import compute_counts, counts_report, make_split
from thinkcount.evaluate.baselines import length_scores, tfidf_scores
from thinkcount.methods.labels import make_labels
from thinkcount.pipeline.config import load_params

R1 = "Okay, so. Wait, no.\nHmm. Wait!\n</think>\n\nThe answer. Wait."  # no opening tag: 3 keywords, 2 Waits
TAGGED = "<think>\nSo. Wait.\n</think>\n\nAnswer."  # 2 keywords, 1 Wait


def record(worker=0, sample=0, content=TAGGED, **extra):
    return {"worker_id": worker, "sample_id": sample, "instruction": "Explain rain.", "input": "",
            "content": content, **extra}


def jsonl(*records):
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def pretty(*records):
    return "".join(json.dumps(r, indent=2) + "\n" for r in records).encode()


# (name, file name, bytes, expected (worker, sample) ids kept, expected problems by reason -> lines)
INGESTION = [
    ("jsonl", "c.jsonl", jsonl(record(0, 0), record(0, 1)), [(0, 0), (0, 1)], {}),
    ("pretty-printed values", "c.json", pretty(record(0, 0), record(0, 1), record(1, 0)),
     [(0, 0), (0, 1), (1, 0)], {}),
    ("one JSON array", "c.json", json.dumps([record(0, 0), record(0, 1)], indent=2).encode(), [(0, 0), (0, 1)], {}),
    ("gzipped jsonl", "c.jsonl.gz", gzip.compress(jsonl(record(0, 0), record(2, 2))), [(0, 0), (2, 2)], {}),
    ("byte-order mark", "c.jsonl", b"\xef\xbb\xbf" + jsonl(record(0, 0), record(0, 1)), [(0, 0), (0, 1)], {}),
    # A broken pretty-printed record is one problem at its first line (8), not one per line.
    ("broken pretty record counted once", "c.json",
     pretty(record(0, 0)) + b'{\n  "worker_id": 0,\n  "content": "unterminated\n}\n' + pretty(record(0, 2)),
     [(0, 0), (0, 2)], {"malformed_json": [8]}),
    ("invalid UTF-8 is its own reason", "c.jsonl",
     jsonl(record(0, 0)) + b'{"worker_id": 0, "sample_id": 1, "instruction": "Caf\xe9", "content": "x"}\n'
     + jsonl(record(0, 2)), [(0, 0), (0, 2)], {"invalid_utf8": [2]}),
    ("digit-string ids are numbers, so a duplicate", "c.jsonl", jsonl(record(3, 1), record("3", "1"), record("a", 1)),
     [(3, 1), ("a", 1)], {"duplicate_worker_sample_id": [2]}),
    ("a value that is not an object", "c.jsonl", jsonl(record(0, 0)) + b"[1, 2]\n", [(0, 0)],
     {"not_a_json_object": [2]}),
]


@pytest.mark.parametrize("name, filename, content, kept, problems", INGESTION, ids=[c[0] for c in INGESTION])
def test_ingestion_keeps_good_records_and_counts_each_bad_one_once(tmp_path, name, filename, content, kept, problems):
    path = tmp_path / filename
    path.write_bytes(content)
    records, found, rows, _ = validate_records(path)
    assert [(r["worker_id"], r["sample_id"]) for r in records] == kept
    assert {reason: entry["lines"] for reason, entry in found.by_reason.items()} == problems
    assert rows == len(kept) + found.total
    assert not any("\ufffd" in r["instruction"] + r["content"] for r in records)  # nothing replaced


def test_digit_string_ids_are_reported_as_normalised(tmp_path):
    (tmp_path / "c.jsonl").write_bytes(jsonl(record("7", "0"), record(7, 1)))
    records, _, _, notes = validate_records(tmp_path / "c.jsonl")
    assert [r["worker_id"] for r in records] == [7, 7] and notes == {"ids_read_from_digit_strings": 2}


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "folder", "is a directory"),
    (lambda d: d / "missing.jsonl", "no such file"),
    (lambda d: (d / "bad.jsonl.gz").write_bytes(b"not gzip") and d / "bad.jsonl.gz", "not a readable gzip file"),
    (lambda d: (d / "x.jsonl").write_bytes(b"\xff\xfe\n") and d / "x.jsonl", "no valid records (invalid_utf8"),
])
def test_unreadable_sources_stop_with_one_sentence(tmp_path, make, message):
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        validate_records(make(tmp_path))


def test_pretty_printed_export_round_trip_matches_the_formula(tmp_path, counting):
    """An export mixing R1-style and tagged traces, pretty-printed: counts follow the formula."""
    (tmp_path / "export.json").write_bytes(pretty(record(0, 0, R1), record(0, 1, TAGGED)))
    records, problems, _, _ = validate_records(tmp_path / "export.json")
    assert problems.total == 0
    counts = compute_counts(records, counting)
    # counts: keywords before the first </think>, plus one. R1: Okay, So (in "so."? no: case-sensitive), Wait,
    # Hmm, Wait -> "Okay", "Wait", "Hmm", "Wait" = 4 matches, + 1.
    assert counts["counts"].tolist() == [5, 3]
    assert counts["wait_counts"].tolist() == [3, 2]
    strict = compute_counts(records, counting.model_copy(update={"think_start": "tag"}))
    assert strict["wait_counts"].tolist() == [1, 2]  # the seed's formula misses the R1 trace's Waits
    assert strict["counts"].tolist() == [5, 3]  # keyword counts never needed the opening tag


# (content, think_start, case_sensitive, expected wait_counts)
WAITS = [
    (R1, "tag_or_start", True, 3),
    (R1, "tag", True, 1),
    (TAGGED, "tag", True, 2),
    ("<think>\nWait, wait, WAIT\n</think>", "tag", True, 2),
    ("<think>\nWait, wait, WAIT\n</think>", "tag", False, 4),
    ("Wait, Wait, cut off at the token limit", "tag_or_start", True, 1),  # no closed block
    ("</think>\n\nWait, only the answer", "tag_or_start", True, 1),  # thinking skipped
]


@pytest.mark.parametrize("content, think_start, case_sensitive, expected", WAITS)
def test_wait_counts_follow_the_think_start_and_case_rules(content, think_start, case_sensitive, expected):
    assert count_waits(content, think_start, wait_pattern(case_sensitive)) == expected


def test_case_insensitive_keyword_counts(keywords):
    assert len(keyword_pattern(keywords).findall("wait hmm Okay")) == 1
    assert len(keyword_pattern(keywords, case_sensitive=False).findall("wait hmm Okay")) == 3


def test_counts_warns_when_most_traces_lack_the_opening_tag_under_the_strict_rule(counting):
    records = [record(0, i, R1) for i in range(3)] + [record(1, 0, TAGGED)]
    counts = compute_counts(records, counting.model_copy(update={"think_start": "tag"}))
    report, warning = counts_report(records, counts, "tag")
    assert report["records_without_opening_tag"] == 3
    assert warning.startswith("3 of 4 traces have </think> without <think>")
    assert counts_report(records, compute_counts(records, counting), "tag_or_start")[1] is None


# (records, expected sizes or an error fragment)
SPLITS = [
    (150, {"train": 120, "val": 15, "test": 15}),
    (1001, {"train": 801, "val": 100, "test": 100}),
    (50, "50 distinct prompts give 5 val, 5 test prompts; train, val and test each need at least 10"),
    (94, "at least 95 distinct prompts"),
    (95, {"train": 75, "val": 10, "test": 10}),
]


@pytest.mark.parametrize("n, expected", SPLITS)
def test_split_sizes_are_exact_fractions_or_one_sentence(n, expected):
    counts = pd.DataFrame({"worker_id": 0, "sample_id": range(n),
                           "counts": np.random.default_rng(0).integers(1, 60, n)})
    if isinstance(expected, str):
        with pytest.raises(UserError, match=expected):
            make_split(counts, 42, 0.1, 0.1, 10)
    else:
        assert make_split(counts, 42, 0.1, 0.1, 10)["split"].value_counts().to_dict() == expected


@pytest.mark.parametrize("name, message", [
    ("m03_equal_freq", "method m03_equal_freq on variant all: every train row has counts 5"),
    ("m01_regress", "method m01_regress on variant all: every train row has counts 5"),
    ("m13_rank", "method m13_rank on variant all: every train row has counts 5"),
])
def test_a_constant_target_stops_labeling_with_one_sentence(params, name, message):
    rows = tiny_rows().assign(counts=5)
    with pytest.raises(UserError, match=message):
        make_labels(rows, params.methods[name], 0, name)


def test_a_labeling_with_one_class_on_train_stops_with_one_sentence(params):
    rows = tiny_rows()  # counts 1-59: manual edges [0, 1000] give one class
    method = params.methods["m06_weighted"]
    method = method.model_copy(update={"labels": method.labels.model_copy(update={"edges": [0, 1000]})})
    with pytest.raises(UserError, match="labels.scheme manual gives 1 class on the train rows"):
        make_labels(rows, method, 0, "m06_weighted")


@pytest.mark.parametrize("fit, message", [
    (lambda t: length_scores(t.iloc[:1], t), "at least 2 different lengths"),
    (lambda t: tfidf_scores(t.iloc[:0], t, 1.0, 100), "cannot be fitted on 0 train rows"),
])
def test_baselines_on_tiny_data_stop_with_one_sentence(fit, message):
    with pytest.raises(UserError, match=message):
        fit(tiny_rows())


# (edit of params.yaml as text or a dict edit, error fragment)
PARAMS = [
    (lambda p: p["data"].update(sample_size=0), "'data.sample_size' must be >= 1, got 0"),
    (lambda p: p["split"].update(strata=-2), "'split.strata' must be >= 1, got -2"),
    (lambda p: p["split"].update(val_fraction=0.6, test_fraction=0.5), "must be below 1"),
    (lambda p: p["counts"].update(keywords=[]), "'counts.keywords' must be a non-empty list"),
    (lambda p: p["counts"].update(keywords=["Wait", ""]), "'counts.keywords' must be a non-empty list"),
    (lambda p: p["counts"].update(keywords=["Wait", 5]), "'counts.keywords' must be a non-empty list"),
    (lambda p: p["counts"].update(think_start="open"), "'counts.think_start' must be one of tag, tag_or_start"),
    (lambda p: p["encoders"]["minilm-l6"].update(learning_rate=0), "'encoders.minilm-l6.learning_rate' must be > 0"),
    (lambda p: p["data"].update(source="/tmp/elsewhere.jsonl"), "is outside data/external/"),
    (lambda p: p["data"].update(source="data/external/../x.jsonl"), "is outside data/external/"),
]


@pytest.mark.parametrize("edit, message", PARAMS)
def test_bad_params_values_stop_with_one_sentence_naming_the_key(tmp_path, edit, message):
    bad = params_mapping()
    edit(bad)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        load_params(tmp_path / "params.yaml")


def test_a_source_inside_data_external_is_accepted(tmp_path):
    good = params_mapping()
    good["data"]["source"] = "data/external/traces.jsonl.gz"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(good))
    assert load_params(tmp_path / "params.yaml").data.source == "data/external/traces.jsonl.gz"


def test_a_yaml_syntax_error_names_its_line_and_column(tmp_path):
    (tmp_path / "params.yaml").write_text("model: minilm-l6\ndata:\n  source: [sample\n")
    with pytest.raises(UserError, match=r"params.yaml, line 4, column 1: not valid YAML"):
        load_params(tmp_path / "params.yaml")
