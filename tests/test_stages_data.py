"""The data stages run as dvc runs them: scripts from the repository root with params.yaml."""
import json

import pytest

from conftest import ROOT, params_mapping, read_json, run_stage, write_params

MIRROR = ROOT.parent / "shared" / "real_traces"

DATA_STAGES = ["corpus", "counts", "filter", "split"]


@pytest.fixture
def small():
    p = params_mapping()
    p["data"]["sample_size"] = 400
    return p


def assert_one_sentence_error(proc, *fragments):
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_data_stages_produce_counts_variants_and_split(tmp_path, small):
    write_params(tmp_path, small)
    for script in DATA_STAGES:
        proc = run_stage(script, tmp_path)
        assert proc.returncode == 0, proc.stderr
    corpus = read_json(tmp_path / "metrics/data/corpus.json")
    assert corpus["rows_valid"] == 400 and corpus["oracle_kendall_tau"] > 0.3
    counts = [json.loads(line) for line in (tmp_path / "data/counts.jsonl").open()]
    assert len(counts) == 400 and all(c["counts"] >= 1 for c in counts)
    for variant in ("all", "clean", "wait_only"):
        report = read_json(tmp_path / f"metrics/data/{variant}.json")
        kept = sum(1 for _ in (tmp_path / f"data/variants/{variant}.jsonl").open())
        assert report["rows_kept"] == kept and report["rows_in"] == 400
    # The 400 generated prompts are distinct, so prompts and rows agree.
    assert read_json(tmp_path / "metrics/data/split.json") == {"train": 320, "val": 40, "test": 40,
                                                               "prompts": {"train": 320, "val": 40, "test": 40}}


def test_real_data_drops_in_through_the_source_param(tmp_path, small):
    lines = [json.dumps({"worker_id": w, "sample_id": s, "instruction": f"Explain topic {w}-{s}.",
                         "content": "<think>\nOkay, Wait, Hmm.\n</think>\n\nAnswer."})
             for w in range(2) for s in range(60)]
    lines[3] = "{broken"
    lines.append(lines[5])  # duplicate (worker_id, sample_id)
    (tmp_path / "data/external").mkdir(parents=True)
    (tmp_path / "data/external/real.jsonl").write_text("\n".join(lines) + "\n")
    small["data"]["source"] = "data/external/real.jsonl"
    write_params(tmp_path, small)
    proc = run_stage("corpus", tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = read_json(tmp_path / "metrics/data/corpus.json")
    assert report["rows_read"] == 121 and report["rows_valid"] == 119
    assert report["invalid"] == {"malformed_json": {"count": 1, "lines": [4]},
                                 "duplicate_worker_sample_id": {"count": 1, "lines": [121]}}
    assert report["oracle_kendall_tau"] is None
    assert "skipped 2 invalid records" in proc.stdout
    for script in DATA_STAGES[1:]:
        assert run_stage(script, tmp_path).returncode == 0
    assert read_json(tmp_path / "metrics/data/counts.json")["counts"]["p50"] == 4


@pytest.mark.parametrize("setup, fragments", [
    (lambda p, d: p["data"].update(source="data/external/nowhere.jsonl"), ["nowhere.jsonl", "no such file"]),
    (lambda p, d: (p["data"].update(source="data/external/empty.jsonl"), (d / "data/external").mkdir(parents=True),
                   (d / "data/external/empty.jsonl").write_text("")), ["empty.jsonl", "no valid records"]),
    (lambda p, d: p["data"].update(sampel_size=3), ["unknown key 'data.sampel_size'"]),
])
def test_bad_input_stops_the_stage_with_one_sentence(tmp_path, small, setup, fragments):
    setup(small, tmp_path)
    write_params(tmp_path, small)
    assert_one_sentence_error(run_stage("corpus", tmp_path), *fragments)


def test_a_stage_without_its_inputs_names_the_missing_file(tmp_path, small):
    write_params(tmp_path, small)
    assert_one_sentence_error(run_stage("counts", tmp_path), "data/raw/corpus.jsonl", "no such file")


def test_a_method_stage_names_an_unknown_method(tmp_path, small):
    write_params(tmp_path, small)
    assert_one_sentence_error(run_stage("label", tmp_path, "m99_nothing"), "unknown method 'm99_nothing'")


@pytest.mark.slow
@pytest.mark.skipif(not MIRROR.is_dir(), reason="needs ../shared/real_traces")
def test_the_real_source_fetches_ingests_and_splits_the_public_traces_by_prompt(tmp_path, small, monkeypatch):
    monkeypatch.setenv("THINKCOUNT_TRACES_MIRROR", str(MIRROR))
    small["data"]["source"] = "real"
    small["split"]["test_fraction"] = 0.2
    write_params(tmp_path, small)
    for script in DATA_STAGES:
        proc = run_stage(script, tmp_path)
        assert proc.returncode == 0, proc.stderr
    corpus = read_json(tmp_path / "metrics/data/corpus.json")
    # MANIFEST.tsv: 2,869 + 2,653 + 2,141 + 12,168 traces in 114 trace files; 440 records carry no trace at all,
    # and one (a speechmap GLM-4-Z1 answer) opens a think block it never closes: kept, as truncated.
    assert (corpus["rows_valid"], corpus["files"], corpus["files_off_manifest"]) == (19831, 114, {})
    assert corpus["invalid"] == {"no_trace": 440} and corpus["truncated"] == 1 and corpus["prompts"] == 1995
    split = read_json(tmp_path / "metrics/data/split.json")
    assert split["prompts"] == {"train": 1396, "val": 200, "test": 399}  # round(0.1 * 1995), round(0.2 * 1995)
    rows = [json.loads(line) for line in (tmp_path / "data/counts.jsonl").open()]
    where = {(r["worker_id"], r["sample_id"]): r["prompt_id"] for r in rows}
    splits = {}
    for line in (tmp_path / "data/split.jsonl").open():
        row = json.loads(line)
        splits.setdefault(where[(row["worker_id"], row["sample_id"])], set()).add(row["split"])
    assert len(splits) == 1995 and all(len(s) == 1 for s in splits.values())
