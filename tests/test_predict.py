"""The predictor's errors, on a tiny model trained in the test."""
import json
import os
import shutil

import numpy as np
import pytest

from conftest import model_aware_copy, verb
from thinkcount import UserError
from thinkcount.methods import modelfolder
from thinkcount.serve import predict
from thinkcount.serve.predict import Predictor

main = verb("predict")


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
    with pytest.raises(UserError, match="no manifest.json, so its training did not finish"):
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

    from thinkcount.serve.onnx_runtime import OnnxModel
    torch_predictor = Predictor.load(model_dir, backend="torch")
    prompts = [f"Why is the sky blue? How? {i}" if i % 2 else f"List {i} colors, please." for i in range(40)]
    exact = [r["score"] for r in torch_predictor.predict(prompts)]
    served = Predictor.load(model_dir, device="cpu")
    assert isinstance(served.model, OnnxModel)
    assert np.allclose([r["score"] for r in served.predict(prompts)], exact, atol=1e-4)
    int8 = [r["score"] for r in Predictor.load(model_dir, device="cpu", int8=True).predict(prompts)]
    assert int8 != exact  # quantized, so not the same numbers ...
    assert kendalltau(int8, exact).statistic > 0.5  # ... but much the same ranking


def test_a_replica_shares_the_model_and_scores_alongside_the_original(model_dir):
    from concurrent.futures import ThreadPoolExecutor
    predictor = Predictor.load(model_dir, device="cpu", threads=1)
    assert predictor.model.session.get_session_options().intra_op_num_threads == 1
    replica = predictor.replica()
    assert replica.model is predictor.model and replica.tokenizer is not predictor.tokenizer
    prompts = [f"Why is the sky blue? {'How? ' * i}" for i in range(12)]
    alone = [r["score"] for r in Predictor.load(model_dir, device="cpu").predict(prompts, 4)]
    with ThreadPoolExecutor(2) as pool:  # each thread its own predictor, as the service's workers
        both = list(pool.map(lambda p: [r["score"] for r in p.predict(prompts, 4)], [predictor, replica] * 4))
    assert all(np.allclose(scores, alone, atol=1e-5) for scores in both)


# ---- model folders that are partial, corrupted or mixed: (name, change to a copy, backend, message) ----
def flip_byte(path, at=0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def resealed(change, describe="old"):
    """A change followed by a fresh manifest: the hashes pass, so the parts themselves must be checked.
    The manifest describes the label configuration from before the change (old) or after it (new)."""
    def apply(folder):
        config = modelfolder.read_label_config(folder / "label_config.json")
        change(folder)
        if describe == "new":
            config = modelfolder.read_label_config(folder / "label_config.json")
        modelfolder.seal(folder, "m08_markers", config)
    return apply


def regression_config(folder):
    config = json.loads((folder / "label_config.json").read_text())
    config.update(task="regression", scheme="raw", n_labels=None, label_stats=None, label_names=None,
                  edges=None, scale={"mean": 0.0, "std": 1.0})
    (folder / "label_config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))


FOLDERS = [
    ("training stopped before the manifest", lambda d: (d / "manifest.json").unlink(), "auto",
     "no manifest.json, so its training did not finish"),
    ("a flipped byte in model.onnx", lambda d: flip_byte(d / "model.onnx"), "auto",
     "model.onnx differs from the file training wrote"),
    ("a flipped byte in the encoder weights", lambda d: flip_byte(d / "encoder/model.safetensors"), "torch",
     "model.safetensors differs from the file training wrote"),
    ("another method's label configuration", regression_config, "auto",
     "label_config.json differs from the file training wrote"),
    ("another method's label configuration, resealed", resealed(regression_config), "auto",
     "label_config.json describes a regression model with 1 outputs but manifest.json a classification model "
     "with {n}"),
    ("another method's label configuration, resealed to match it", resealed(regression_config, "new"), "auto",
     "the onnx model has {n} outputs but manifest.json says 1"),
    ("an empty model.onnx, resealed", resealed(lambda d: (d / "model.onnx").write_bytes(b"")), "auto",
     "model.onnx: cannot be loaded"),
    ("a truncated model.onnx, resealed", resealed(lambda d: (d / "model.onnx").write_bytes(
        (d / "model.onnx").read_bytes()[:5000])), "auto", "model.onnx: cannot be loaded"),
    ("a truncated head.pt, resealed", resealed(lambda d: (d / "head.pt").write_bytes(
        (d / "head.pt").read_bytes()[:100])), "torch", "head.pt: cannot be loaded"),
    ("an invalid label_config.json, resealed", resealed(lambda d: (d / "label_config.json").write_text("{oops")),
     "auto", "label_config.json: not valid JSON"),
    ("an invalid manifest", lambda d: (d / "manifest.json").write_text("[1, 2]"), "auto",
     "manifest.json: not a thinkcount manifest"),
    ("a listed file removed", lambda d: (d / "model.int8.onnx").unlink(), "auto",
     "model.int8.onnx: missing, but listed in manifest.json"),
]


@pytest.mark.parametrize("name, change, backend, message", FOLDERS, ids=[f[0] for f in FOLDERS])
def test_a_partial_corrupted_or_mixed_folder_is_refused_with_one_sentence(model_dir, tmp_path, capsys, name,
                                                                          change, backend, message):
    folder = tmp_path / "m08_markers"
    shutil.copytree(model_dir, folder)
    change(folder)
    assert main(["--model", str(folder), "--backend", backend, "Why is the sky blue?"]) == 1
    err = capsys.readouterr().err
    message = message.format(n=json.loads((model_dir / "label_config.json").read_text())["n_labels"])
    assert message in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


# ---- the predictor's input: (name, bytes of --input, prompts scored, or the error) ----
INPUTS = [
    ("byte-order mark", b'\xef\xbb\xbf{"instruction": "Why?"}\n{"instruction": "List two."}\n', ["Why?", "List two."]),
    ("CR-only line breaks", b'{"instruction": "Why?"}\r{"instruction": "List two."}\r', ["Why?", "List two."]),
    ("invalid UTF-8", b'{"instruction": "Why?"}\n{"instruction": "Caf\xe9"}\n', "line 2: not valid UTF-8"),
    ("a lone surrogate", b'{"instruction": "Why?"}\n{"instruction": "A\\ud800"}\n', "line 2: holds a lone surrogate"),
    ("a key differing only by case", b'{"instruction": "Why?", "Input": "text"}\n',
     "line 1: key `Input` differs from `input` only by case"),
]


@pytest.mark.parametrize("name, content, expected", INPUTS, ids=[i[0] for i in INPUTS])
def test_the_predictor_reads_its_input_as_strictly_as_the_pipeline(model_dir, tmp_path, capsys, name, content,
                                                                   expected):
    (tmp_path / "in.jsonl").write_bytes(content)
    out = tmp_path / "out.jsonl"
    code = main(["--model", str(model_dir), "--input", str(tmp_path / "in.jsonl"), "--output", str(out)])
    if isinstance(expected, str):
        err = capsys.readouterr().err
        assert code == 1 and expected in err and len(err.strip().splitlines()) == 1
        assert os.listdir(tmp_path) == ["in.jsonl"]  # nothing written, not even a temporary file
    else:
        assert code == 0 and [json.loads(line)["prompt"] for line in out.open()] == expected


def test_input_is_scored_in_chunks_and_the_output_appears_whole(model_dir, tmp_path, monkeypatch):
    prompts = [f"Explain step {i} of the proof." if i % 3 else f"List {i} fruits." for i in range(7)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"instruction": p}) + "\n" for p in prompts))
    monkeypatch.setattr(predict, "CHUNK", 3)  # 3 + 3 + 1 prompts
    calls = []
    original = Predictor.predict
    monkeypatch.setattr(Predictor, "predict", lambda self, batch, *a, **k: calls.append(len(batch)) or original(
        self, batch, *a, **k))
    assert main(["--model", str(model_dir), "--input", str(tmp_path / "in.jsonl"), "--output",
                 str(tmp_path / "out.jsonl")]) == 0
    scored = [json.loads(line) for line in (tmp_path / "out.jsonl").open()]
    assert calls == [3, 3, 1] and [s["prompt"] for s in scored] == prompts
    expected = original(Predictor.load(model_dir), prompts)
    assert [s["score"] for s in scored] == pytest.approx([e["score"] for e in expected], abs=1e-6)


def test_the_int8_copy_is_written_only_when_asked(tmp_path, params, tiny_encoders):
    from conftest import sealed_model
    folder = sealed_model(tmp_path / "m08", params, tiny_encoders, int8=False)
    assert (folder / "model.onnx").is_file() and not (folder / "model.int8.onnx").exists()
    with pytest.raises(UserError, match="runs on the CPU from model.int8.onnx, which this folder lacks"):
        Predictor.load(folder, device="cpu", int8=True)


def test_a_model_aware_predictor_needs_the_answering_model_and_reads_it_before_the_prompt(model_dir, tmp_path):
    folder = model_aware_copy(model_dir, tmp_path / "aware")
    aware, pooled = Predictor.load(folder, backend="torch"), Predictor.load(model_dir, backend="torch")
    with pytest.raises(UserError, match="model-aware"):
        aware.predict(["Why is the sky blue?"])
    got = aware.predict(["Why is the sky blue?"], model="qwen3-32b")[0]["score"]
    described = "[qwen3, 10-40B, distilled from none, thinking default] Why is the sky blue?"
    assert got == pytest.approx(pooled.predict([described])[0]["score"], abs=1e-6)
    assert got != pytest.approx(pooled.predict(["Why is the sky blue?"])[0]["score"], abs=1e-6)
