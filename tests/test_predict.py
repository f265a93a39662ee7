"""The predictor's errors, on a tiny model trained in the test."""
import json

import numpy as np
import pytest

from conftest import labelled, tiny_params, tiny_rows
from thinkcount import UserError
from thinkcount.jsonl import write_json
from thinkcount.predict import Predictor, main
from thinkcount.training import train_method


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, params, tiny_encoders):
    out = tmp_path_factory.mktemp("model") / "m08_markers"
    p = tiny_params(params, {"deberta-v2": tiny_encoders["deberta-v2"]})
    rows, config = labelled(p, "m08_markers", tiny_rows())
    model, tokenizer, _, _, config = train_method(p, "m08_markers", rows, config, out, progress=False)
    model.save(out, tokenizer)
    write_json(out / "label_config.json", config.to_dict())
    return out


def test_predict_returns_scores_labels_and_probabilities(model_dir):
    results = Predictor.load(model_dir).predict(["Why is the sky blue?", "List three colors."])
    stats = json.loads((model_dir / "label_config.json").read_text())["label_stats"]
    assert len(results) == 2
    for r in results:
        assert set(r) == {"score", "expected_counts", "label", "label_name", "probs"}
        assert r["label_name"].startswith("(") and abs(sum(r["probs"]) - 1) < 1e-4
        # The score is E[log1p counts] under the class probabilities; expected_counts is E[counts].
        assert r["score"] == pytest.approx(sum(p * s["counts"]["log1p_mean"] for p, s in zip(r["probs"], stats)),
                                           abs=1e-4)
        assert r["expected_counts"] == pytest.approx(sum(p * s["counts"]["mean"] for p, s in zip(r["probs"], stats)),
                                                     rel=1e-4)
    assert Predictor.load(model_dir).predict([]) == []


def test_predict_rejects_empty_prompts_and_a_bare_string(model_dir):
    predictor = Predictor.load(model_dir)
    with pytest.raises(UserError, match="prompt 1 is empty"):
        predictor.predict(["ok", "  "])
    with pytest.raises(UserError, match="list of prompts"):
        predictor.predict("one string")


def test_load_names_a_missing_model_folder(tmp_path):
    with pytest.raises(UserError, match="no such model folder"):
        Predictor.load(tmp_path / "m99_nothing")
    with pytest.raises(UserError, match="no label_config.json"):
        Predictor.load(tmp_path)


def test_cli_prints_jsonl_for_prompts(model_dir, capsys):
    assert main(["--model", str(model_dir), "Why?", "List two."]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["prompt"] for line in lines] == ["Why?", "List two."]


@pytest.mark.parametrize("content, message", [
    ('{"instruction": "ok"}\n{"input": "no instruction"}\n', "line 2: no `instruction`"),
    ('{"instruction": "ok"}\nnot json\n', "line 2: not a JSON object"),
    ('{"instruction": "ok", "input": 3}\n', "line 1: `input` is not text"),
])
def test_cli_stops_on_a_bad_input_line_with_one_sentence(model_dir, tmp_path, capsys, content, message):
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    assert main(["--model", str(model_dir), "--input", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_cli_errors_for_a_missing_model_or_no_prompts(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "missing"), "hi"]) == 1
    assert "no such model folder" in capsys.readouterr().err
    assert main(["--model", str(tmp_path)]) == 1
    assert "give prompts" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "-1", "hi"], "--batch-size must be a positive integer, got -1"),
    (["--batch-size", "0", "hi"], "--batch-size must be a positive integer, got 0"),
    (["--input", "{empty}"], "no prompts to score"),
    (["--output", "{folder}", "hi"], "is a folder; give a file path"),
])
def test_cli_checks_its_arguments_with_one_sentence_and_writes_nothing(model_dir, tmp_path, capsys, args, message):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "out").mkdir()
    args = [a.format(empty=tmp_path / "empty.jsonl", folder=tmp_path / "out") for a in args]
    assert main(["--model", str(model_dir), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_output_into_a_missing_folder_creates_it(model_dir, tmp_path):
    out = tmp_path / "new" / "deeper" / "scores.jsonl"
    assert main(["--model", str(model_dir), "--output", str(out), "Why?", "List two."]) == 0
    assert [json.loads(line)["prompt"] for line in out.open()] == ["Why?", "List two."]
    assert [p.name for p in out.parent.iterdir()] == ["scores.jsonl"]  # no temporary file left


def test_a_file_given_as_the_model_is_named_as_a_file(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("")
    assert main(["--model", str(tmp_path / "x.txt"), "hi"]) == 1
    assert "x.txt is a file; give a trained model folder" in capsys.readouterr().err


def test_api_takes_any_iterable_of_prompts_and_checks_the_batch_size(model_dir):
    predictor = Predictor.load(model_dir)
    prompts = ["Why is the sky blue?", "List three colors."]
    expected = [r["score"] for r in predictor.predict(prompts)]
    assert [r["score"] for r in predictor.predict(p for p in prompts)] == expected
    assert [r["score"] for r in predictor.predict(np.array(prompts))] == expected
    with pytest.raises(UserError, match="batch_size must be a positive integer, got -1"):
        predictor.predict(prompts, batch_size=-1)


def test_onnx_copies_score_like_pytorch_and_serve_by_default_on_cpu(model_dir):
    from scipy.stats import kendalltau
    from thinkcount.onnx_export import OnnxModel, export
    torch_predictor = Predictor.load(model_dir, backend="torch")
    export(torch_predictor.model, torch_predictor.tokenizer, model_dir)
    prompts = [f"Why is the sky blue? How? {i}" if i % 2 else f"List {i} colors, please." for i in range(40)]
    exact = [r["score"] for r in torch_predictor.predict(prompts)]
    served = Predictor.load(model_dir, device="cpu")
    assert isinstance(served.model, OnnxModel)
    assert np.allclose([r["score"] for r in served.predict(prompts)], exact, atol=1e-4)
    int8 = [r["score"] for r in Predictor.load(model_dir, device="cpu", int8=True).predict(prompts)]
    assert int8 != exact  # quantized, so not the same numbers ...
    assert kendalltau(int8, exact).statistic > 0.5  # ... but much the same ranking
