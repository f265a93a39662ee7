"""Model-aware serving: the request's `model` mapped to the predictor's training name, and the rule for a name it
does not know (the fallback model, or unscored at the neutral priority; /score refuses it)."""
import json

import httpx
import pytest
import yaml

from conftest import model_aware_copy
from test_resilience import Echo
from test_serve import in_thread, metric, service
from thinkcount import UserError
from thinkcount.methods import modelfolder
from thinkcount.serve.naming import ModelNames, read_model_map
from thinkcount.serve.predict import Predictor
from thinkcount.serve.proxy import priority

PROMPT = "Explain step by step how to solve 3x + 5 = 20."


def test_names_resolve_through_the_map_the_training_names_and_their_families():
    names = ModelNames(True, frozenset({"qwen3-8b", "r1"}), {"Qwen/Qwen3-8B": "qwen3-8b"})
    assert [names.resolve(m) for m in ("Qwen/Qwen3-8B", "r1", "gpt-x", None, "")] == \
        [("qwen3-8b", "qwen3-8b"), ("r1", "r1"), (None, None), (None, None), (None, None)]
    # never seen, but of a family it was trained on: scored by its description
    assert names.resolve("Qwen/Qwen3-32B") == \
        ("Qwen/Qwen3-32B", "described as qwen3, 10-40B, distilled from none, thinking default")
    assert ModelNames(True, None, {}).resolve("any") == ("any", "any")  # no list: every name is passed on
    assert ModelNames(False, None, {}).resolve("gpt-x") == (None, "pooled")


@pytest.mark.parametrize("text, message", [("[1, 2]", "must map served model names"),
                                           ("a: ''", "must map served model names"), ("a: [b", "cannot be read")])
def test_a_bad_model_map_is_one_sentence(tmp_path, text, message):
    (tmp_path / "map.yaml").write_text(text)
    with pytest.raises(UserError, match=message):
        read_model_map(tmp_path / "map.yaml")


@pytest.fixture(scope="module")
def aware(model_dir, tmp_path_factory):
    """A model-aware copy of the tiny model that lists the names it was trained on."""
    folder = model_aware_copy(model_dir, tmp_path_factory.mktemp("aware") / "aware")
    (folder / modelfolder.TRAINING_MODELS).write_text(json.dumps({"models": {"qwen3-8b": 40, "r1": 24}}))
    modelfolder.seal(folder, "m08_markers", modelfolder.read_label_config(folder / "label_config.json"))
    return folder


def ask(url, model):
    return httpx.post(f"{url}/v1/chat/completions", json={"model": model,
                                                           "messages": [{"role": "user", "content": PROMPT}]})


@pytest.mark.slow
def test_the_proxy_scores_with_the_request_s_model_mapped_to_its_training_name(aware, model_dir, tmp_path):
    predictor = Predictor.load(aware)
    expected = {m: predictor.predict([PROMPT], model=m)[0]["expected_counts"]
                for m in ("qwen3-8b", "r1", "Qwen/Qwen3-32B")}
    assert expected["qwen3-8b"] != expected["r1"]  # the model the predictor is told of changes its answer
    pooled = Predictor.load(model_dir).predict([PROMPT])[0]["expected_counts"]
    (tmp_path / "map.yaml").write_text(yaml.safe_dump({"Qwen/Qwen3-8B": "qwen3-8b"}))
    echo = Echo()
    with in_thread(echo.app()) as engine:
        with service(aware, "--upstream", engine, "--model-map", tmp_path / "map.yaml", "--aging-seconds", 3600) \
                as (url, _):
            reply = ask(url, "Qwen/Qwen3-8B")
            assert reply.headers["x-thinkcount-model"] == "qwen3-8b"
            assert reply.json()["priority"] == priority(expected["qwen3-8b"], 0)
            reply = ask(url, "Qwen/Qwen3-32B")  # never seen, family seen: its description is scored
            assert reply.headers["x-thinkcount-model"].startswith("described as qwen3, 10-40B")
            assert reply.json()["priority"] == priority(expected["Qwen/Qwen3-32B"], 0)
            reply = ask(url, "gpt-x")  # an unknown family, no fallback: on at the neutral priority
            assert (reply.status_code, reply.json()["priority"]) == (200, 30)
            assert (reply.headers["x-thinkcount-model"], reply.headers["x-thinkcount-score"]) == ("unknown",
                                                                                                 "unavailable")
            assert metric(url, 'thinkcount_score_unavailable_total{reason="unknown_model"}') == 1
        with service(aware, "--upstream", engine, "--fallback-model", model_dir, "--aging-seconds", 3600) as (url, _):
            reply = ask(url, "gpt-x")
            assert reply.headers["x-thinkcount-model"] == "fallback"
            assert reply.json()["priority"] == priority(pooled, 0)


def test_a_model_aware_fallback_is_refused(aware):
    from thinkcount.serve.service import ModelSlot
    with pytest.raises(UserError, match="the fallback model must read the prompt alone"):
        ModelSlot(aware, 16, pooled_only=True)
