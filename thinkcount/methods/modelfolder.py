"""A trained model's folder is complete or absent.

A train stage writes the folder under a temporary name beside its place (`.NAME.partial`), writes
manifest.json last (every file's sha256, the method, its task and output size), then renames the
folder into place in one step. A folder without a manifest is therefore one whose training did not
finish; the predictor refuses it, a file whose hash differs from the manifest's, and parts that
disagree (a label configuration or weights of another method)."""
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from thinkcount import UserError
from thinkcount.core.jsonl import read_json, write_json
from thinkcount.methods.labelconfig import LabelConfig

MANIFEST, LABEL_CONFIG = "manifest.json", "label_config.json"
# The model's residuals on its validation rows: log(realised / expected) quantiles, the proxy's bar for an
# abnormal answer (thinkcount/serve/traffic.py).
RESIDUALS = "residuals.json"
RESIDUAL_QUANTILES = (50, 90, 95, 99)
# A model-aware model's training names and their rows: the names the served ones are mapped to.
TRAINING_MODELS = "training_models.json"


def version(folder):
    """The first 12 hex digits of the manifest's sha256: it changes whenever any file of the model does."""
    return hashlib.sha256((Path(folder) / MANIFEST).read_bytes()).hexdigest()[:12]


def write_training_models(folder, models):
    """The answering models' names in a model-aware model's training rows, with how many rows each had."""
    names = pd.Series(models).fillna("").value_counts()
    write_json(Path(folder) / TRAINING_MODELS, {"models": {str(k): int(v) for k, v in sorted(names.items())}})


def write_residuals(folder, realised, expected, target):
    """Quantiles of log(realised / expected) over validation rows (expected counts below 1 read as 1)."""
    ratio = np.log(np.asarray(realised, float)) - np.log(np.maximum(np.asarray(expected, float), 1.0))
    write_json(Path(folder) / RESIDUALS, {"target": target, "rows": int(len(ratio)), "log_ratio_quantiles": {
        f"p{q}": float(np.percentile(ratio, q)) for q in RESIDUAL_QUANTILES}})


def partial_path(folder):
    folder = Path(folder)
    return folder.with_name(f".{folder.name}.partial")


def clear_partial(folder):
    """Remove what an earlier, interrupted training left under the temporary name."""
    shutil.rmtree(partial_path(folder), ignore_errors=True)


def output_size(config):
    """The number of outputs a model trained with this label configuration has."""
    return config.n_labels if config.task == "classification" else 1


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_model(folder, model, tokenizer, config):
    """The model's own files: encoder, tokenizer, head and label configuration (the train stage adds the
    ONNX copies, the card, then the manifest)."""
    model.save(folder, tokenizer)
    write_json(Path(folder) / LABEL_CONFIG, config.to_dict())


def seal(partial, method, config):
    """Write the manifest of a finished folder: the last file written before it is published."""
    partial = Path(partial)
    files = {p.relative_to(partial).as_posix(): sha256(p) for p in sorted(partial.rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    write_json(partial / MANIFEST, {"method": method, "task": config.task, "n_outputs": output_size(config),
                                    "files": files})


def publish(partial, folder):
    """Rename the sealed temporary folder onto its place (replacing an older model there)."""
    partial, folder = Path(partial), Path(folder)
    if not (partial / MANIFEST).is_file():
        raise UserError(f"{partial}: not sealed (no {MANIFEST}); refusing to publish it as {folder}.")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)


def check_folder(folder):
    """The manifest and label configuration of a complete, unchanged model folder, or one sentence."""
    folder = Path(folder)
    if folder.is_file():
        raise UserError(f"{folder} is a file; give a trained model folder such as models/m13_rank.")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such model folder; train it with `dvc repro train@{folder.name}`.")
    if not (folder / MANIFEST).is_file():
        raise UserError(f"{folder}: no {MANIFEST}, so its training did not finish or it is not a thinkcount model "
                        f"folder; retrain it with `dvc repro train@{folder.name}`.")
    manifest = read_manifest(folder / MANIFEST)
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path}: missing, but listed in {MANIFEST}; retrain with `dvc repro train@"
                            f"{manifest['method']}`.")
        if sha256(path) != digest:
            raise UserError(f"{path} differs from the file training wrote (sha256 in {MANIFEST}); the folder was "
                            f"changed after training: retrain with `dvc repro train@{manifest['method']}`.")
    config = read_label_config(folder / LABEL_CONFIG)
    if (config.task, output_size(config)) != (manifest["task"], manifest["n_outputs"]):
        raise UserError(f"{folder}: {LABEL_CONFIG} describes a {config.task} model with {output_size(config)} "
                        f"outputs but {MANIFEST} a {manifest['task']} model with {manifest['n_outputs']}; its parts "
                        "come from different trainings.")
    return manifest, config


def loaded(path, load):
    """load(path), or one sentence naming path when it cannot be read (truncated, empty, not that format)."""
    try:
        return load(path)
    except UserError:
        raise
    except Exception as e:  # each library has its own errors for a broken file; all mean the same here
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0][:160]
        raise UserError(f"{path}: cannot be loaded ({detail}).") from None


def read_manifest(path):
    manifest = read_json(path)
    keys = {"method": str, "task": str, "n_outputs": int, "files": dict}
    if not isinstance(manifest, dict) or any(not isinstance(manifest.get(k), t) for k, t in keys.items()):
        raise UserError(f"{path}: not a thinkcount manifest (needs {', '.join(keys)}).")
    if LABEL_CONFIG not in manifest["files"]:
        raise UserError(f"{path}: does not list {LABEL_CONFIG}.")
    return manifest


def read_label_config(path):
    saved = read_json(path)
    try:
        return LabelConfig.from_dict(saved)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise UserError(f"{path}: not a valid label configuration ({e}).") from None
