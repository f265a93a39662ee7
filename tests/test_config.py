import pytest
import yaml

from conftest import ROOT, params_mapping
from thinkcount import UserError
from thinkcount.pipeline.config import key_help, load_params


def write(tmp_path, params):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_project_params_are_valid(params):
    assert params.model in params.encoders
    assert set(params.reference) <= set(params.methods)  # the reference column names methods only


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["data"].update(smaple_size=5), "unknown key 'data.smaple_size'"),
    (lambda p: p.update(extra=1), "unknown key 'extra'"),
    (lambda p: p["methods"]["m01_regress"].update(lables={}), "unknown key 'methods.m01_regress.lables'"),
    (lambda p: p["data"].pop("seed"), "missing key 'data.seed'"),
    (lambda p: p["data"].update(sample_size="many"), "'data.sample_size' must be int, got str"),
    (lambda p: p["data"].update(sample_size=True), "'data.sample_size' must be int, got bool"),
    (lambda p: p.update(model="gpt-9"), "'model' is 'gpt-9', not one of encoders"),
    (lambda p: p["methods"]["m02_equal_width"].update(loss="mse"), "loss' mse does not fit task classification"),
    (lambda p: p["methods"]["m02_equal_width"]["labels"].pop("bins"), "labels.bins' is needed"),
    (lambda p: p["methods"]["m01_regress"].update(variant="dirty"), "'methods.m01_regress.variant' must be one of"),
    (lambda p: p["train"].update(precision="fp8"), "'train.precision' must be one of"),
    # Each labeling scheme takes its own keys only: bins mean nothing to raw counts.
    (lambda p: p["methods"]["m01_regress"]["labels"].update(bins=3), "unknown key 'methods.m01_regress.labels.bins'"),
    (lambda p: p["methods"]["m01_regress"]["labels"].update(scheme="rawx"),
     "'methods.m01_regress.labels.scheme' must be one of raw, log1p, equal_width"),
    (lambda p: p["methods"]["m09_kmeans"]["labels"].update(k_min=1), "'methods.m09_kmeans.labels.k_min' must be >= 2"),
    (lambda p: p["encoders"]["minilm-l6"].update(learning_rate="fast"), "learning_rate' must be int or float, got str"),
    (lambda p: p["serving"].update(sweep=[0.5, 1.5]), "'serving.sweep.1' must be <= 1, got 1.5"),
    (lambda p: p["evaluate"].update(families={"r1": "deepseek("}), "'evaluate.families' is not a regular expression"),
    (lambda p: p["methods"]["m13_rank"].update(train_models="[qwen"),
     "'methods.m13_rank.train_models' is not a regular expression"),
    (lambda p: p["baselines"]["b_surface"].update(target="tokens"), "'baselines.b_surface.target' must be one of"),
    (lambda p: p["baselines"]["b_tfidf"].pop("alpha"), "'baselines.b_tfidf' needs alpha and max_features"),
])
def test_a_bad_key_stops_with_one_sentence_naming_it(tmp_path, edit, message):
    bad = params_mapping()
    edit(bad)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        load_params(write(tmp_path, bad))


def test_missing_or_broken_params_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("model: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(tmp_path / "broken.yaml")


def leaf_keys(node, where=""):
    for key, value in node.items():
        name = f"{where}.{key}" if where else str(key)
        if isinstance(value, dict) and not name.endswith(".cues") and not name.startswith("reference"):
            yield from leaf_keys(value, name)
        elif not name.startswith("reference"):
            yield name


def test_every_params_key_has_a_comment_and_errors_quote_it(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    undocumented = [k for k in leaf_keys(yaml.safe_load(text)) if not key_help(text, k)]
    assert undocumented == []
    assert key_help(text, "encoders.deberta-v3-large.batch_size") == "examples per device per optimizer step (>= 1)"
    (tmp_path / "params.yaml").write_text(text.replace("bootstrap: 1000", "bootstrap: 0"))
    with pytest.raises(UserError) as error:
        load_params(tmp_path / "params.yaml")
    assert str(error.value).endswith("'evaluate.bootstrap' must be >= 1, got 0. params.yaml says: bootstrap "
                                     "resamples of the test prompts for every confidence interval (>= 1)")


def test_every_method_is_a_dvc_artifact():
    artifacts = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"]
    methods = yaml.safe_load((ROOT / "params.yaml").read_text())["methods"]
    assert {name: a["path"] for name, a in artifacts.items()} == {m: f"models/{m}" for m in methods}
    assert {a["type"] for a in artifacts.values()} == {"model"}


def test_stages_that_do_not_train_import_neither_torch_nor_transformers():
    """Each stage process pays for its imports (about 13 s for torch and transformers on 2 cores)."""
    import subprocess
    import sys
    code = ("import sys; import stages.corpus, stages.counts, stages.filter, stages.split, stages.label, "
            "stages.evaluate, stages.compare, stages.baseline; print(sorted(m for m in ('torch', 'transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_ci_overlay_adds_nested_keys_and_refuses_a_mapping_over_a_value():
    from thinkcount.ops.scratch import merge
    base = {"methods": {"m02": {"task": "classification"}}, "train": {"epochs": 2}}
    merged = merge(base, {"methods": {"m02": {"overrides": {"model": "minilm-l6"}}}, "train": {"epochs": 1}})
    assert merged == {"methods": {"m02": {"task": "classification", "overrides": {"model": "minilm-l6"}}},
                      "train": {"epochs": 1}}
    with pytest.raises(UserError, match="'train.epochs' is not a mapping"):
        merge({"train": {"epochs": 2}}, {"train": {"epochs": {"x": 1}}})
