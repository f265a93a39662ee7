"""params.yaml, read once and validated: a bad key stops the run with one sentence naming it."""
import json
import re
from pathlib import Path

import yaml

from thinkcount import UserError
from thinkcount.core import paths
from thinkcount.data.features import NUMERIC

NUMBER = (int, float)
OPTIONAL = object()  # marks a schema entry that may be absent

ENCODER = {"source": str, "batch_size": int, "learning_rate": NUMBER, "max_length": int,
           "num_layers": (int, OPTIONAL)}
LABELS = {"scheme": str, "bins": (int, OPTIONAL), "edges": (list, OPTIONAL),
          "k_min": (int, OPTIONAL), "k_max": (int, OPTIONAL), "features": (str, OPTIONAL),
          "restarts": (int, OPTIONAL), "final_restarts": (int, OPTIONAL),
          "silhouette_sample": (int, type(None), OPTIONAL)}
FEATURES = {"match": str, "numeric": list, "length": list, "cues": {"*": (list, str)}}
OVERRIDES = {"model": (str, OPTIONAL), "epochs": (NUMBER, OPTIONAL), "batch_size": (int, OPTIONAL),
             "learning_rate": (NUMBER, OPTIONAL), "grad_accum": (int, OPTIONAL),
             "max_train_rows": (int, OPTIONAL), "max_length": (int, OPTIONAL)}
METHOD = {
    "variant": str, "target": str, "labels": LABELS, "task": str, "loss": str,
    "head": (str, OPTIONAL), "trainable_layers": (int, type(None), OPTIONAL),
    "two_stage": ({"learning_rate": NUMBER, "epoch_fraction": NUMBER}, type(None), OPTIONAL),
    "markers": (str, type(None), OPTIONAL), "overrides": (OVERRIDES, OPTIONAL),
}
SCHEMA = {
    "model": str,
    "encoders": {"*": ENCODER},
    "data": {"source": str, "sample_size": int, "sample_workers": int, "seed": int},
    "counts": {"keywords": list, "case_sensitive": bool, "think_start": str},
    "features": {"*": FEATURES},
    "filter": {"max_counts": int, "long_think_chars": int, "max_long_waits": int},
    "split": {"seed": int, "val_fraction": float, "test_fraction": float, "strata": int},
    "train": {"seed": int, "epochs": NUMBER, "max_train_rows": int, "max_val_rows": int,
              "eval_batch_size": int, "batches": str,
              "early_stopping_patience": int, "weight_decay": NUMBER, "warmup_ratio": NUMBER,
              "precision": str, "device": str, "processes": int, "batch_scaling": str, "nodes": int,
              "rdzv_endpoint": str},
    "methods": {"*": METHOD},
    "baselines": {"*": {"kind": str, "alpha": (NUMBER, OPTIONAL), "max_features": (int, OPTIONAL),
                        "train_rows": (str, OPTIONAL)}},
    "evaluate": {"bootstrap": int, "seed": int},
    "serving": {"load": NUMBER, "sweep": list, "repeats": int, "seed": int, "max_batch": int, "kv_tokens": int,
                "step_ms": NUMBER, "decode_ms_per_seq": NUMBER, "prefill_ms_per_token": NUMBER,
                "chars_per_token": NUMBER},
    "reference": {"*": str},
}
CHOICES = {
    "variant": ("all", "clean", "wait_only"), "target": ("counts", "wait_counts"),
    "task": ("regression", "classification", "ranking"), "loss": ("mse", "ce", "weighted_ce", "pairwise"),
    "head": ("linear", "mlp"), "scheme": ("raw", "log1p", "equal_width", "equal_freq", "manual", "kmeans"),
    "precision": ("auto", "fp32", "bf16", "fp16"), "kind": ("length", "tfidf", "first_word", "probe", "oracle"),
    "think_start": ("tag", "tag_or_start"), "device": ("auto", "cuda", "cpu"),
    "batch_scaling": ("fixed_global", "linear_lr"), "batches": ("length_grouped", "random"),
}
# Numeric ranges: (lowest, highest or None, whether the bounds themselves are allowed). "*" is any name.
RANGES = {
    "data.sample_size": (1, None, True), "data.sample_workers": (1, None, True),
    "filter.max_counts": (1, None, True), "filter.long_think_chars": (0, None, True),
    "filter.max_long_waits": (0, None, True),
    "split.val_fraction": (0, 1, False), "split.test_fraction": (0, 1, False), "split.strata": (1, None, True),
    "train.epochs": (0, None, False), "train.max_train_rows": (1, None, True), "train.max_val_rows": (1, None, True),
    "train.eval_batch_size": (1, None, True), "train.early_stopping_patience": (1, None, True),
    "train.weight_decay": (0, None, True), "train.warmup_ratio": (0, 1, True), "train.processes": (1, None, True),
    "train.nodes": (1, None, True),
    "encoders.*.batch_size": (1, None, True), "encoders.*.learning_rate": (0, None, False),
    "encoders.*.max_length": (2, None, True), "encoders.*.num_layers": (1, None, True),
    "methods.*.labels.restarts": (1, None, True), "methods.*.labels.final_restarts": (1, None, True),
    "methods.*.labels.silhouette_sample": (2, None, True),
    "evaluate.bootstrap": (1, None, True), "serving.repeats": (1, None, True),
    "serving.max_batch": (1, None, True), "serving.kv_tokens": (1, None, True), "serving.step_ms": (0, None, False),
    "serving.decode_ms_per_seq": (0, None, True), "serving.prefill_ms_per_token": (0, None, True),
    "serving.chars_per_token": (0, None, False),
}
EXTERNAL = Path(paths.EXTERNAL)
SCHEME_NEEDS = {"equal_width": ("bins",), "equal_freq": ("bins",), "manual": ("edges",),
                "kmeans": ("k_min", "k_max", "features", "restarts", "final_restarts", "silhouette_sample")}
TASK_LOSSES = {"regression": ("mse",), "classification": ("ce", "weighted_ce"), "ranking": ("pairwise",)}


def load_params(path="params.yaml"):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; run from the repository root.")
    text = path.read_text(encoding="utf-8")
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e}).") from None
    try:
        check_names(params, path)
        check(params, SCHEMA, "", path)
        check_values(params, path)
        check_feature_sets(params, path)
        check_semantics(params, path)
    except UserError as e:
        raise UserError(with_key_help(str(e), text)) from None
    return params


# Names of methods, baselines, encoders and feature sets become shell arguments (`python -m stages.train
# NAME`) and folder names (models/NAME, which DVC deletes before a stage runs), so they are identifiers:
# letters, digits, _ and -, not starting with - (no spaces, quotes, ;, / or ..).
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
NAMED = {"methods": "method", "baselines": "baseline", "encoders": "encoder", "features": "feature set",
         "reference": "reference"}


def check_names(params, path):
    """Every name a stage command or path is built from is an identifier, checked before anything else."""
    if not isinstance(params, dict):
        raise UserError(f"{path}: the top level must be a mapping of keys.")
    for collection, what in NAMED.items():
        names = params.get(collection)
        for name in names if isinstance(names, dict) else ():
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise UserError(f"{path}: {what} name {json.dumps(name)} is not allowed: names become shell "
                                "arguments and folder names, so they use letters, digits, _ and - (not first).")


KEY_LINE = re.compile(r"^(\s*)([\w.\-]+):(.*)$")
COLLECTIONS = ("encoders", "methods", "features", "baselines", "reference")


def with_key_help(message, text):
    """Append the params.yaml comment of the key a message names (its first quoted name)."""
    named = re.search(r"'([\w.\-]+)'", message)
    help_text = key_help(text, named.group(1)) if named else None
    return f"{message.rstrip('.')}. params.yaml says: {help_text}" if help_text else message


def key_help(text, dotted):
    """A key's comment: on its line or the comment lines just above; for a key inside a collection
    (encoders.x.batch_size), the first sibling's; else a legend line above the collection (`#   key: ...`)."""
    comments, above, stack = {}, [], []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            above.append(line.strip().lstrip("#").strip())
            continue
        match = KEY_LINE.match(line)
        if not match:
            above = []
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, key)]
        inline = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        comments[".".join(k for _, k in stack)] = inline or " ".join(above)
        above = []
    parts = dotted.split(".")
    candidates = [dotted]
    if parts[0] in COLLECTIONS and len(parts) > 2:
        rest = ".".join(parts[2:])
        candidates += [k for k in comments if k.startswith(parts[0] + ".") and k.split(".", 2)[-1] == rest]
    for key in candidates:
        if comments.get(key):
            return comments[key]
    for name in (".".join(parts[2:]), parts[2] if len(parts) > 3 else None):
        legend = re.search(rf"^\s*#.*?\b({re.escape(name)}:.*)$", text, re.MULTILINE) if name else None
        if legend:
            return legend.group(1).strip()
    return None


def check_values(params, path):
    """Ranges of numbers, the keyword list, and where a data source may live."""
    for dotted, (low, high, inclusive) in RANGES.items():
        for where, value in find(params, dotted.split(".")):
            if value is not None and not in_range(value, low, high, inclusive):
                ops = (">=", "<=") if inclusive else (">", "<")
                bound = f"{ops[0]} {low}" + ("" if high is None else f" and {ops[1]} {high}")
                raise UserError(f"{path}: '{where}' must be {bound}, got {value}.")
    keywords = params["counts"]["keywords"]
    if not keywords or not all(isinstance(k, str) and k for k in keywords):
        raise UserError(f"{path}: 'counts.keywords' must be a non-empty list of non-empty strings "
                        "(an empty keyword would match at every character).")
    source = params["data"]["source"]
    external = (path.parent / EXTERNAL).resolve()
    if source != "sample" and not (path.parent / source).resolve().is_relative_to(external):
        raise UserError(f"{path}: 'data.source' {source} is outside {EXTERNAL}/, which is the folder DVC tracks "
                        f"(results would go stale when the file changes); move the file under {EXTERNAL}/.")


def in_range(value, low, high, inclusive):
    if inclusive:
        return value >= low and (high is None or value <= high)
    return value > low and (high is None or value < high)


def check_feature_sets(params, path):
    for name, spec in params["features"].items():
        where = f"features.{name}"
        if spec["match"] not in ("substring", "word"):
            raise UserError(f"{path}: '{where}.match' must be one of substring, word.")
        unknown = [n for n in spec["numeric"] if n not in NUMERIC]
        if unknown:
            raise UserError(f"{path}: '{where}.numeric' has {unknown}; choose among {', '.join(NUMERIC)}.")
        length = spec["length"]
        if length and (len(length) != 2 or not all(isinstance(b, int) for b in length) or length[0] >= length[1]):
            raise UserError(f"{path}: '{where}.length' must be [] or two increasing word counts, got {length}.")
        for cue, words in spec["cues"].items():
            ok = words == "multi_question" or (isinstance(words, list) and words
                                               and all(isinstance(w, str) and w for w in words))
            if not ok:
                raise UserError(f"{path}: '{where}.cues.{cue}' must be a non-empty list of words or multi_question.")


def find(node, parts, where=""):
    """(dotted name, value) of every present key matching parts, "*" matching any key."""
    if not parts:
        yield where, node
        return
    head, rest = parts[0], parts[1:]
    keys = node.keys() if head == "*" else [head] if head in node else []
    for key in keys:
        yield from find(node[key], rest, f"{where}.{key}" if where else str(key))


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
    for where, choices in (("train.precision", "precision"), ("counts.think_start", "think_start"),
                           ("train.device", "device"), ("train.batch_scaling", "batch_scaling")):
        section, key = where.split(".")
        if params[section][key] not in CHOICES[choices]:
            raise UserError(f"{path}: '{where}' must be one of {', '.join(CHOICES[choices])}.")
    loads = [params["serving"]["load"], *params["serving"]["sweep"]]
    if not all(isinstance(x, NUMBER) and not isinstance(x, bool) and 0 < x <= 1 for x in loads):
        raise UserError(f"{path}: 'serving.load' and every value of 'serving.sweep' must be numbers above 0 and at "
                        "most 1.")
    split = params["split"]
    if split["val_fraction"] + split["test_fraction"] >= 1:
        raise UserError(f"{path}: 'split.val_fraction' + 'split.test_fraction' must be below 1, leaving train rows.")
    for name, baseline in params["baselines"].items():
        if baseline["kind"] not in CHOICES["kind"]:
            raise UserError(f"{path}: 'baselines.{name}.kind' must be one of {', '.join(CHOICES['kind'])}.")
        needs = {"tfidf": {"alpha", "max_features"}, "probe": {"alpha"}}.get(baseline["kind"], set())
        if not needs <= set(baseline):
            raise UserError(f"{path}: 'baselines.{name}' needs {' and '.join(sorted(needs))}.")
        if baseline.get("train_rows", "budget") not in ("budget", "all"):
            raise UserError(f"{path}: 'baselines.{name}.train_rows' must be budget or all.")
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
        used = (("markers", method.get("markers")), ("labels.features", method["labels"].get("features")))
        for key, name_used in used:
            if name_used is not None and name_used not in params["features"]:
                raise UserError(f"{path}: '{where}.{key}' is '{name_used}', not one of features: "
                                f"{', '.join(params['features'])}.")
        model = method.get("overrides", {}).get("model")
        if model is not None and model not in params["encoders"]:
            raise UserError(f"{path}: '{where}.overrides.model' is '{model}', not one of encoders.")
