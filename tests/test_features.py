"""The seed's prompt features, pinned on hand-made prompts (../shared/seed_reported.yaml, seed_features):
lower-cased instruction + input, plain substrings, quirks included."""
import json

import pytest
import yaml

from conftest import ROOT
from thinkcount import UserError
from thinkcount.data.features import FeatureSet, feature_set, prepare_text
from thinkcount.methods.labelconfig import LabelConfig

KMEANS_COLUMNS = ["word_count", "char_count", "question_marks", "has_explain", "has_creative", "has_calculate",
                  "has_list", "has_why", "has_how"]

# (prompt, seed_kmeans row, m08 markers, m10 markers)
PROMPTS = [
    ("Show me the way.", [4, 16, 0, 0, 0, 0, 0, 0, 1], ["[SHORT]", "[HOW]"], ["[SHORT]", "[HOW]"]),  # sHOW
    ("Is it different?", [3, 16, 1, 0, 0, 0, 0, 0, 0], ["[SHORT]", "[CONDITIONAL]"], ["[SHORT]"]),  # dIFferent
    ("Why? How? Really?", [3, 17, 3, 0, 0, 0, 0, 1, 1], ["[SHORT]", "[MULTI_Q]", "[WHY]", "[HOW]"],
     ["[SHORT]", "[WHY]", "[HOW]"]),
    ("Compare cats versus dogs and elaborate", [6, 38, 0, 1, 0, 0, 0, 0, 0],
     ["[SHORT]", "[EXPLAIN]", "[COMPARE]"], ["[SHORT]", "[EXPLAIN]"]),  # m10's EXPLAIN still has "compare"
    ("Generate a story, then enumerate ways to solve it.", [9, 50, 0, 0, 1, 1, 1, 0, 0],
     ["[SHORT]", "[CREATIVE]", "[CALCULATE]", "[LIST]"], ["[SHORT]", "[CREATIVE]", "[CALCULATE]", "[LIST]"]),
    ("Please " + "word " * 9 + "find it", [12, 59, 0, 0, 0, 0, 0, 0, 0], ["[MEDIUM]", "[CALCULATE]"],
     ["[MEDIUM]", "[CALCULATE]"]),
    ("ELABORATE on " + "x " * 23, [25, 59, 0, 0, 0, 0, 0, 0, 0], ["[LONG]", "[EXPLAIN]"], ["[LONG]"]),
]


@pytest.mark.parametrize("prompt, row, m08, m10", PROMPTS)
def test_seed_features_and_markers_on_hand_made_prompts(params, prompt, row, m08, m10):
    kmeans = feature_set(params.features, "seed_kmeans")
    assert kmeans.columns == KMEANS_COLUMNS
    assert kmeans.row(prompt) == row
    assert feature_set(params.features, "seed_m08_markers").markers(prompt) == m08
    assert feature_set(params.features, "seed_m10_markers").markers(prompt) == m10


def test_whole_word_matching_is_one_line_away(params):
    spec = {**params.features["seed_m08_markers"].model_dump(), "match": "word"}
    words = FeatureSet.from_dict("words", spec)
    assert words.markers("Show me the way.") == ["[SHORT]"]
    assert words.markers("Is it different? And if not?") == ["[SHORT]", "[CONDITIONAL]", "[MULTI_Q]"]


def test_default_methods_use_the_seed_feature_sets(params):
    methods = params.methods
    assert methods["m08_markers"].markers == "seed_m08_markers"
    assert methods["m10_kmeans_clean"].markers == "seed_m10_markers"
    assert methods["m09_kmeans"].labels.features == methods["m10_kmeans_clean"].labels.features == "seed_kmeans"
    for name in ("m09_kmeans", "m10_kmeans_clean"):
        labels = methods[name].labels
        assert (labels.restarts, labels.final_restarts, labels.silhouette_sample) == (20, 30, None)


def test_a_saved_marker_set_prepares_text_as_training_did(params):
    markers = feature_set(params.features, "seed_m10_markers")
    saved = LabelConfig(scheme="log1p", target="counts", task="regression", markers=markers).to_dict()
    loaded = LabelConfig.from_dict(json.loads(json.dumps(saved)))
    assert loaded.markers == markers
    assert prepare_text("Why so?", loaded.markers) == "[SHORT] [WHY] Why so?"
    assert prepare_text("Why so?", LabelConfig.from_dict({**saved, "markers": None}).markers) == "Why so?"


SEED_FILE = ROOT.parent / "shared" / "seed_reported.yaml"


@pytest.mark.skipif(not SEED_FILE.is_file(), reason="the seed's report lives in ../shared beside the clone")
def test_reference_column_and_seed_profile_follow_the_seed_report(params):
    seed = yaml.safe_load(SEED_FILE.read_text())
    reported = {m: v["reported"] for m, v in seed.items() if m.startswith("m") and "reported" in v}
    assert params.reference == reported and len(reported) == 12
    profile = yaml.safe_load((ROOT / "profiles/seed.yaml").read_text())["methods"]
    for method, entry in reported.items():
        overrides = profile[method]["overrides"]
        settings = seed[method]
        assert overrides["model"] == settings["encoder"]
        for key in ("epochs", "batch_size", "learning_rate", "grad_accum"):
            if key in settings:
                assert overrides[key] == settings[key], (method, key)


def test_profile_becomes_dvc_set_arguments_and_names_a_missing_encoder(tmp_path, monkeypatch):
    from thinkcount.ops.profile import check_profile, set_arguments
    assert set_arguments({"train": {"epochs": 3}, "methods": {"m01_regress": {"overrides": {"learning_rate": 2e-5}}}}) \
        == ["-S", "++train.epochs=3", "-S", "++methods.m01_regress.overrides.learning_rate=2.0e-05"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: the hub encoders are absent
    with pytest.raises(UserError, match="encoder 'bert-base-uncased' .* is not in the local Hugging Face cache"):
        check_profile(ROOT / "params.yaml", yaml.safe_load((ROOT / "profiles/seed.yaml").read_text()))


def test_the_real_profile_is_valid_and_runs_offline_on_the_default_encoder():
    from thinkcount.ops.profile import check_profile
    params = check_profile(ROOT / "params.yaml", yaml.safe_load((ROOT / "profiles/real.yaml").read_text()))
    assert params.data.source == "real" and params.model == "minilm-l6"
    methods = params.methods
    assert methods["m13_model"].model_token and methods["m13_length"].target == "think_chars"
    # Transfer between families is the held-out stage's (one family left out in turn, finalists only), so no method
    # of the profile trains on one family.
    assert set(params.evaluate.families) == {"deepseek_r1", "qwen3", "other"}
    assert params.heldout.methods == ["m13_rank", "m13_model"]
    assert all(m.train_models is None for m in methods.values())
