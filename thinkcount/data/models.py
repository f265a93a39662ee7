"""What a model-aware method reads of the answering model: a description (family, parameter bucket, the teacher it
was distilled from, thinking mode) parsed from its name by thinkcount/data/model_registry.yaml, instead of the bare
name. A name the training data never held is described by what it shares with those it did
(`deepseek-ai/DeepSeek-R1-Distill-Llama-8B`: llama, below 10B, distilled from deepseek-r1)."""
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from thinkcount import UserError

REGISTRY = Path(__file__).with_name("model_registry.yaml")
REGISTRY_VARIABLE = "THINKCOUNT_MODEL_REGISTRY"  # a file of the same shape whose entries are read first
UNKNOWN = "unknown model"
SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z])", re.I)  # 14b, 235B; not the a22b of 235b-a22b
THINKING = (("high", "high"), ("medium", "medium"), ("low", "low"), ("think|thk|reasoning", "on"))


@dataclass(frozen=True)
class ModelDescription:
    family: str      # a family of the registry, or unknown
    size: str        # the parameter bucket, or unknown size
    distilled: str   # the family of the teacher it was distilled from, or none
    thinking: str    # high, medium, low, on (named in the name), or default

    def text(self):
        if self.family == UNKNOWN:
            return UNKNOWN
        return f"{self.family}, {self.size}, distilled from {self.distilled}, thinking {self.thinking}"


@lru_cache(maxsize=4)
def registry(extra=None):
    """The shipped registry with extra's families and models read first."""
    def read(path):
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise UserError(f"{path}: the model registry cannot be read ({type(e).__name__}).") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: the model registry must be a mapping of families, sizes and models.")
        return data
    base, more = read(REGISTRY), read(extra) if extra else {}
    return {"families": {**more.get("families", {}), **base["families"]},
            "sizes": more.get("sizes", base["sizes"]),
            "models": {**base.get("models", {}), **{k.lower(): v for k, v in more.get("models", {}).items()}}}


def family_of(text, families):
    return next((family for family, pattern in families.items() if re.search(pattern, text, re.I)), UNKNOWN)


def size_bucket(billions, bounds):
    if billions is None:
        return "unknown size"
    edges = [0] + list(bounds)
    for low, high in zip(edges, edges[1:]):
        if billions < high:
            return f"{low}-{high}B"
    return f"{edges[-1]}B+"


def describe(name):
    """The ModelDescription of a model name (None or empty: unknown model)."""
    if not isinstance(name, str) or not name.strip():
        return ModelDescription(UNKNOWN, "unknown size", "none", "default")
    reg = registry(os.environ.get(REGISTRY_VARIABLE) or None)
    entry = reg["models"].get(name.lower(), {})
    teacher, _, student = name.lower().rpartition("distill")
    family = entry.get("family") or family_of(student or name, reg["families"])
    distilled = family_of(teacher, reg["families"]) if teacher else "none"
    size = entry.get("size")
    if size is None:
        found = SIZE.search(name)
        size = float(found.group(1)) if found else None
    thinking = entry.get("thinking") or next((mode for pattern, mode in THINKING if re.search(pattern, name, re.I)),
                                             "default")
    return ModelDescription(family, size_bucket(size, reg["sizes"]), distilled, thinking)
