"""params.yaml, read once and validated: a bad key stops the run with one sentence naming it."""
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError,
                      field_validator, model_validator)

from thinkcount import UserError
from thinkcount.core import paths
from thinkcount.data.counting import THINK_STARTS
from thinkcount.data.features import NUMERIC

# The schema of params.yaml: types, defaults, choices and ranges in one place (pydantic, strict: a string
# or a bool is never taken for a number). Each labeling scheme is its own model, chosen by `scheme`.
# load_params returns the typed, frozen Params (attribute access: params.train.seed); the comment of every key
# is in params.yaml.
Number = Union[StrictInt, StrictFloat]
Positive = Annotated[StrictInt, Field(ge=1)]
NonNegative = Annotated[StrictInt, Field(ge=0)]
Share = Annotated[Number, Field(gt=0, lt=1)]


def check_regex(pattern):
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"'{{where}}' is not a regular expression ({e})") from None
    return pattern


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Encoder(Strict):
    source: StrictStr
    batch_size: Positive
    learning_rate: Annotated[Number, Field(gt=0)]
    max_length: Annotated[StrictInt, Field(ge=2)]
    num_layers: Optional[Positive] = None


class Data(Strict):
    source: StrictStr
    sample_size: Positive
    sample_workers: Positive
    seed: StrictInt
    served_dir: StrictStr = "data/external/served"
    served_since: Optional[datetime] = None
    served_until: Optional[datetime] = None
    mix_real: StrictBool = False

    @field_validator("served_since", "served_until", mode="before")
    @classmethod
    def iso_time(cls, value):
        if value is None or isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"'{{where}}' must be an ISO 8601 time such as 2026-12-06T18:00:00+00:00, got {value!r}") \
                from None


class Counts(Strict):
    keywords: list
    case_sensitive: StrictBool
    think_start: Literal[THINK_STARTS]

    @field_validator("keywords")
    @classmethod
    def non_empty_strings(cls, keywords):
        if not keywords or not all(isinstance(k, str) and k for k in keywords):
            raise ValueError("'counts.keywords' must be a non-empty list of non-empty strings (an empty keyword "
                             "would match at every character)")
        return keywords


class FeatureSetSpec(Strict):
    match: Literal["substring", "word"]
    numeric: list[Literal[tuple(NUMERIC)]]
    length: list[StrictInt]
    cues: dict[str, Union[Literal["multi_question"], list[Annotated[StrictStr, Field(min_length=1)]]]]

    @model_validator(mode="after")
    def check_length_and_cues(self):
        if self.length and (len(self.length) != 2 or self.length[0] >= self.length[1]):
            raise ValueError(f"'{{where}}.length' must be [] or two increasing word counts, got {self.length}")
        empty = [cue for cue, words in self.cues.items() if words == []]
        if empty:
            raise ValueError(f"'{{where}}.cues.{empty[0]}' must be a non-empty list of words or multi_question")
        return self


class Filter(Strict):
    max_counts: Positive
    long_think_chars: NonNegative
    max_long_waits: NonNegative
    keep_truncated: StrictBool = False


class Split(Strict):
    by: Literal["prompt", "time"] = "prompt"
    seed: StrictInt
    val_fraction: Share
    test_fraction: Share
    strata: Positive

    @model_validator(mode="after")
    def leave_train_rows(self):
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("'split.val_fraction' + 'split.test_fraction' must be below 1, leaving train rows")
        return self


class Train(Strict):
    seed: StrictInt
    sample_mean: StrictBool = True
    epochs: Annotated[Number, Field(gt=0)]
    max_train_rows: Positive
    max_val_rows: Positive
    eval_batch_size: Positive
    batches: Literal["length_grouped", "random"]
    early_stopping_patience: Positive
    weight_decay: Annotated[Number, Field(ge=0)]
    warmup_ratio: Annotated[Number, Field(ge=0, le=1)]
    int8: StrictBool
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    device: Literal["auto", "cuda", "cpu"]
    processes: Positive
    batch_scaling: Literal["fixed_global", "linear_lr"]
    nodes: Positive
    rdzv_endpoint: StrictStr


class Unbinned(Strict):
    scheme: Literal["raw", "log1p"]


class Binned(Strict):
    scheme: Literal["equal_width", "equal_freq"]
    bins: Positive


class Manual(Strict):
    scheme: Literal["manual"]
    edges: list[Number] = Field(min_length=2)


class KMeansLabels(Strict):
    scheme: Literal["kmeans"]
    features: StrictStr
    k_min: Annotated[StrictInt, Field(ge=2)]
    k_max: StrictInt
    restarts: Positive
    final_restarts: Positive
    silhouette_sample: Optional[Annotated[StrictInt, Field(ge=2)]]


Labels = Annotated[Union[Unbinned, Binned, Manual, KMeansLabels], Field(discriminator="scheme")]


class TwoStage(Strict):
    learning_rate: Annotated[Number, Field(gt=0)]
    epoch_fraction: Annotated[Number, Field(gt=0, lt=1)]


class Overrides(Strict):
    model: Optional[StrictStr] = None
    epochs: Optional[Annotated[Number, Field(gt=0)]] = None
    batch_size: Optional[Positive] = None
    learning_rate: Optional[Annotated[Number, Field(gt=0)]] = None
    grad_accum: Optional[Positive] = None
    max_train_rows: Optional[Positive] = None
    max_length: Optional[Annotated[StrictInt, Field(ge=2)]] = None


# What a method or baseline ranks: keyword counts, "Wait" counts, or the trace's length in think characters or
# in the export's reasoning tokens (every record must carry them).
Target = Literal["counts", "wait_counts", "think_chars", "reasoning_tokens"]

TASK_LOSSES = {"regression": ("mse",), "classification": ("ce", "weighted_ce"), "ranking": ("pairwise",)}


class Method(Strict):
    variant: Literal["all", "clean", "wait_only"]
    target: Target
    labels: Labels
    task: Literal["regression", "classification", "ranking"]
    loss: Literal["mse", "ce", "weighted_ce", "pairwise"]
    head: Literal["linear", "mlp"] = "linear"
    trainable_layers: Optional[NonNegative] = None
    two_stage: Optional[TwoStage] = None
    markers: Optional[StrictStr] = None
    model_token: StrictBool = False
    train_models: Optional[StrictStr] = None
    overrides: Overrides = Overrides()

    @field_validator("train_models")
    @classmethod
    def compiles(cls, pattern):
        return check_regex(pattern)

    @model_validator(mode="after")
    def loss_fits_task(self):
        if self.loss not in TASK_LOSSES[self.task]:
            raise ValueError(f"'{{where}}.loss' {self.loss} does not fit task {self.task}")
        return self


class Baseline(Strict):
    kind: Literal["length", "surface", "tfidf", "first_word", "model", "probe", "oracle", "served"]
    alpha: Optional[Number] = None
    max_features: Optional[Positive] = None
    train_rows: Literal["budget", "all"] = "budget"
    target: Target = "counts"
    variant: Literal["all", "clean", "wait_only"] = "all"

    @model_validator(mode="after")
    def kind_has_its_settings(self):
        needs = {"tfidf": ("alpha", "max_features"), "probe": ("alpha",), "surface": ("alpha",)}.get(self.kind, ())
        if any(getattr(self, key) is None for key in needs):
            raise ValueError(f"'{{where}}' needs {' and '.join(needs)}")
        return self


class Evaluate(Strict):
    bootstrap: Positive
    seed: StrictInt
    families: dict[str, StrictStr] = {}

    @field_validator("families")
    @classmethod
    def all_compile(cls, families):
        return {name: check_regex(pattern) for name, pattern in families.items()}


Load = Annotated[Number, Field(gt=0, le=1)]


class Serving(Strict):
    load: Load
    sweep: list[Load]
    repeats: Positive
    seed: StrictInt
    max_batch: Positive
    kv_tokens: Positive
    step_ms: Annotated[Number, Field(gt=0)]
    decode_ms_per_seq: Annotated[Number, Field(ge=0)]
    prefill_ms_per_token: Annotated[Number, Field(ge=0)]
    chars_per_token: Annotated[Number, Field(gt=0)]


class Curves(Strict):
    sizes: list[Positive] = Field(min_length=1)
    repeats: Positive
    seed: StrictInt
    min_traces: Positive
    share: Annotated[Number, Field(gt=0, le=1)]
    embedder: Optional[StrictStr]


class Heldout(Strict):
    methods: list[StrictStr]
    sources: NonNegative
    families: NonNegative
    min_traces: Positive
    max_test: Positive
    seed: StrictInt


class Params(Strict):
    model: StrictStr
    encoders: dict[str, Encoder]
    data: Data
    counts: Counts
    features: dict[str, FeatureSetSpec]
    filter: Filter
    split: Split
    train: Train
    methods: dict[str, Method]
    baselines: dict[str, Baseline]
    evaluate: Evaluate
    serving: Serving
    curves: Curves
    heldout: Heldout
    reference: dict[str, StrictStr]

    @model_validator(mode="after")
    def names_refer_to_defined_ones(self):
        if self.model not in self.encoders:
            raise ValueError(f"'model' is '{self.model}', not one of encoders: {', '.join(self.encoders)}")
        for name, method in self.methods.items():
            for key, used, among in (("markers", method.markers, self.features),
                                     ("labels.features", getattr(method.labels, "features", None), self.features),
                                     ("overrides.model", method.overrides.model, self.encoders)):
                if used is not None and used not in among:
                    what = "encoders" if among is self.encoders else "features"
                    raise ValueError(f"'methods.{name}.{key}' is '{used}', not one of {what}: {', '.join(among)}")
        for name in self.heldout.methods:
            if name not in self.methods:
                raise ValueError(f"'heldout.methods' names '{name}', not one of methods: {', '.join(self.methods)}")
        for name in self.baselines:
            if name in self.methods:
                raise ValueError(f"'baselines.{name}' has the name of a method")
        return self


EXTERNAL = Path(paths.EXTERNAL)


def load_params(path="params.yaml"):
    """params.yaml as the typed Params, or a UserError of one sentence naming the first bad key."""
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
        typed = Params.model_validate(params)
        check_source(typed.data.source, path)
        if typed.data.source == "served":
            check_source(typed.data.served_dir, path, "data.served_dir")
    except ValidationError as e:
        raise UserError(with_key_help(f"{path}: {first_error(e, params)}.", text)) from None
    except UserError as e:
        raise UserError(with_key_help(str(e), text)) from None
    return typed


def updated(params, **sections):
    """params with some values changed and validated again: a mapping merges into its section
    (updated(params, train={"epochs": 1}, encoders={"tiny": {...}})), anything else replaces it (model="tiny")."""
    raw = params.model_dump()
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(raw[key], dict) and isinstance(value, dict) else value
    return Params.model_validate(raw)


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


def check_source(source, path, key="data.source"):
    """A data source other than the embedded corpus lives under data/external/, the folder DVC tracks."""
    external = (path.parent / EXTERNAL).resolve()
    if source not in ("sample", "real", "served") and not (path.parent / source).resolve().is_relative_to(external):
        raise UserError(f"{path}: '{key}' {source} is outside {EXTERNAL}/, which is the folder DVC tracks "
                        f"(results would go stale when the file changes); move it under {EXTERNAL}/.")


TYPE_NAMES = {"int_type": "int", "float_type": "float", "string_type": "str", "bool_type": "bool",
              "list_type": "list", "dict_type": "a mapping", "model_type": "a mapping", "none_required": "null"}
BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
          "less_than": ("<", "lt")}


def key_path(loc, params):
    """The dotted key of an error's location: pydantic's union-member and scheme tags left out. The second
    value is the labeling scheme whose model the location went through, if any."""
    keys, node, scheme = [], params, None
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int):
            keys.append(str(part))
            node = node[part]
        elif isinstance(node, dict) and i == len(loc) - 1:
            keys.append(str(part))  # a missing key
        elif isinstance(node, dict):
            scheme = part  # the discriminated union's tag
        else:
            break  # the rest names union members of a leaf value
    return ".".join(keys), scheme


def first_error(error, params):
    """pydantic's first error as one sentence naming the key (the other errors at that key say which
    types it could have been)."""
    errors = error.errors()
    first = errors[0]
    where, scheme = key_path(first["loc"], params)
    kind, ctx = first["type"], first.get("ctx", {})
    if kind in TYPE_NAMES:
        same = [e["type"] for e in errors if key_path(e["loc"], params)[0] == where and e["type"] in TYPE_NAMES]
        return f"'{where}' must be {' or '.join(dict.fromkeys(TYPE_NAMES[t] for t in same))}, got " \
               f"{type(first['input']).__name__}"
    if kind == "extra_forbidden":
        return f"unknown key '{where}'"
    if kind == "missing":
        return f"'{where}' is needed by scheme {scheme}" if scheme else f"missing key '{where}'"
    if kind == "literal_error":
        return f"'{where}' must be one of {ctx['expected'].replace(chr(39), '').replace(' or ', ', ')}"
    if kind == "union_tag_invalid":
        return f"'{where}.scheme' must be one of {ctx['expected_tags'].replace(chr(39), '')}"
    if kind in BOUNDS:
        op, key = BOUNDS[kind]
        return f"'{where}' must be {op} {ctx[key]}, got {first['input']}"
    if kind == "too_short":
        return f"'{where}' must have at least {ctx['min_length']} items"
    if kind == "value_error":
        return str(ctx["error"]).replace("{where}", where)
    return f"'{where}': {first['msg']}"
