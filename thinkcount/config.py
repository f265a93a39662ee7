"""params.yaml, read once and validated: a bad key stops the run with one sentence naming it."""
from pathlib import Path

import yaml

from thinkcount import UserError

NUMBER = (int, float)
OPTIONAL = object()  # marks a schema entry that may be absent

ENCODER = {"source": str, "batch_size": int, "learning_rate": NUMBER, "max_length": int,
           "num_layers": (int, OPTIONAL)}
LABELS = {"scheme": str, "bins": (int, OPTIONAL), "edges": (list, OPTIONAL),
          "k_min": (int, OPTIONAL), "k_max": (int, OPTIONAL)}
OVERRIDES = {"model": (str, OPTIONAL), "epochs": (NUMBER, OPTIONAL), "batch_size": (int, OPTIONAL),
             "learning_rate": (NUMBER, OPTIONAL), "grad_accum": (int, OPTIONAL),
             "max_train_rows": (int, OPTIONAL), "max_length": (int, OPTIONAL)}
METHOD = {
    "variant": str, "target": str, "labels": LABELS, "task": str, "loss": str,
    "head": (str, OPTIONAL), "trainable_layers": (int, type(None), OPTIONAL),
    "two_stage": ({"learning_rate": NUMBER, "epoch_fraction": NUMBER}, type(None), OPTIONAL),
    "markers": (bool, OPTIONAL), "overrides": (OVERRIDES, OPTIONAL),
}
SCHEMA = {
    "model": str,
    "encoders": {"*": ENCODER},
    "data": {"source": str, "sample_size": int, "sample_workers": int, "seed": int},
    "counts": {"keywords": list},
    "filter": {"max_counts": int, "long_think_chars": int, "max_long_waits": int},
    "split": {"seed": int, "val_fraction": float, "test_fraction": float, "strata": int},
    "train": {"seed": int, "epochs": NUMBER, "max_train_rows": int, "max_val_rows": int,
              "eval_batch_size": int,
              "early_stopping_patience": int, "weight_decay": NUMBER, "warmup_ratio": NUMBER,
              "precision": str, "gpus": int},
    "methods": {"*": METHOD},
    "baselines": {"*": {"kind": str, "alpha": (NUMBER, OPTIONAL), "max_features": (int, OPTIONAL)}},
    "evaluate": {"bootstrap": int, "seed": int},
    "reference": {"*": str},
}
CHOICES = {
    "variant": ("all", "clean", "wait_only"), "target": ("counts", "wait_counts"),
    "task": ("regression", "classification", "ranking"), "loss": ("mse", "ce", "weighted_ce", "pairwise"),
    "head": ("linear", "mlp"), "scheme": ("raw", "log1p", "equal_width", "equal_freq", "manual", "kmeans"),
    "precision": ("auto", "fp32", "bf16", "fp16"), "kind": ("length", "tfidf", "oracle"),
}
SCHEME_NEEDS = {"equal_width": ("bins",), "equal_freq": ("bins",), "manual": ("edges",), "kmeans": ("k_min", "k_max")}
TASK_LOSSES = {"regression": ("mse",), "classification": ("ce", "weighted_ce"), "ranking": ("pairwise",)}


def load_params(path="params.yaml"):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; run from the repository root.")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]}).") from None
    check(params, SCHEMA, "", path)
    check_semantics(params, path)
    return params


def check(node, schema, where, path):
    """Check node against schema: a type, a tuple of allowed types, or a dict of keys."""
    kinds = schema if isinstance(schema, tuple) else (schema,)
    kinds = tuple(k for k in kinds if k is not OPTIONAL)
    for kind in kinds:
        if isinstance(kind, dict) and isinstance(node, dict):
            return check_mapping(node, kind, where, path)
        if kind is float and isinstance(node, NUMBER) and not isinstance(node, bool):
            return
        if isinstance(kind, tuple) and isinstance(node, kind) and not isinstance(node, bool):
            return
        if isinstance(kind, type) and isinstance(node, kind) and (kind is bool or not isinstance(node, bool)):
            return
    names = ", ".join(describe(k) for k in kinds)
    raise UserError(f"{path}: '{where or 'top level'}' must be {names}, got {type(node).__name__}.")


def check_mapping(node, schema, where, path):
    if "*" in schema:
        for key, value in node.items():
            check(value, schema["*"], f"{where}.{key}" if where else str(key), path)
        return
    for key, value in node.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in schema:
            raise UserError(f"{path}: unknown key '{name}'.")
        check(value, schema[key], name, path)
    for key, kind in schema.items():
        if key not in node and not (isinstance(kind, tuple) and OPTIONAL in kind):
            raise UserError(f"{path}: missing key '{where + '.' if where else ''}{key}'.")


def describe(kind):
    if isinstance(kind, dict):
        return "a mapping"
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return "null" if kind is type(None) else kind.__name__


def check_semantics(params, path):
    if params["model"] not in params["encoders"]:
        raise UserError(f"{path}: 'model' is '{params['model']}', not one of encoders: "
                        f"{', '.join(params['encoders'])}.")
    if params["train"]["precision"] not in CHOICES["precision"]:
        raise UserError(f"{path}: 'train.precision' must be one of {', '.join(CHOICES['precision'])}.")
    for name, baseline in params["baselines"].items():
        if baseline["kind"] not in CHOICES["kind"]:
            raise UserError(f"{path}: 'baselines.{name}.kind' must be one of {', '.join(CHOICES['kind'])}.")
        if baseline["kind"] == "tfidf" and not {"alpha", "max_features"} <= set(baseline):
            raise UserError(f"{path}: 'baselines.{name}' needs alpha and max_features.")
        if name in params["methods"]:
            raise UserError(f"{path}: 'baselines.{name}' has the name of a method.")
    for name, method in params["methods"].items():
        where = f"methods.{name}"
        for key in ("variant", "target", "task", "loss", "head"):
            if key in method and method[key] not in CHOICES[key]:
                raise UserError(f"{path}: '{where}.{key}' must be one of {', '.join(CHOICES[key])}.")
        scheme = method["labels"]["scheme"]
        if scheme not in CHOICES["scheme"]:
            raise UserError(f"{path}: '{where}.labels.scheme' must be one of {', '.join(CHOICES['scheme'])}.")
        for need in SCHEME_NEEDS.get(scheme, ()):
            if need not in method["labels"]:
                raise UserError(f"{path}: '{where}.labels.{need}' is needed by scheme {scheme}.")
        if method["loss"] not in TASK_LOSSES[method["task"]]:
            raise UserError(f"{path}: '{where}.loss' {method['loss']} does not fit task {method['task']}.")
        model = method.get("overrides", {}).get("model")
        if model is not None and model not in params["encoders"]:
            raise UserError(f"{path}: '{where}.overrides.model' is '{model}', not one of encoders.")
