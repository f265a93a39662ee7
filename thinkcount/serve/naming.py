"""Which name a model-aware predictor knows a request's model by.

Engines serve names that differ from the ones in the training data (`deepseek-ai/DeepSeek-R1-Distill-Llama-8B`
against `deepseek/deepseek-r1-distill-llama-8b`), so the proxy maps a request's `model` through --model-map (a
JSON or YAML file of served name: training name; a name not in it stands for itself) and checks the result against
the names the model was trained on (training_models.json in its folder). The model reads a name's description
(thinkcount/data/models.py), so a name it never saw whose family it did is scored by that description. A name of an
unknown family is scored by --fallback-model, a prompt-only model, when one is given; otherwise the request goes on
unscored at the neutral priority (the proxy never refuses a request for its predictor), and /score refuses it
with 422."""
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

import yaml

from thinkcount import UserError
from thinkcount.data.models import UNKNOWN, describe
from thinkcount.methods.modelfolder import TRAINING_MODELS


def read_model_map(path):
    """{served name: training name} from a JSON or YAML file, or one sentence."""
    if path is None:
        return {}
    try:
        mapping = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"--model-map {path}: cannot be read ({type(e).__name__}).") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v
                                                for k, v in mapping.items()):
        raise UserError(f"--model-map {path}: must map served model names to training names, both non-empty text.")
    return mapping


def training_names(folder):
    """The names a model-aware folder was trained on, or None when it does not list them (every name passes)."""
    path = Path(folder) / TRAINING_MODELS
    return frozenset(json.loads(path.read_text())["models"]) if path.is_file() else None


@dataclass(frozen=True)
class ModelNames:
    model_aware: bool
    known: frozenset | None    # the training names; None: not listed, so not checked
    mapping: MappingProxyType  # served name -> training name

    @cached_property
    def families(self):
        """The model families of the training names (thinkcount/data/models.py)."""
        return frozenset(describe(n).family for n in self.known or ()) - {UNKNOWN}

    def resolve(self, served):
        """(the name to score with, the label for the x-thinkcount-model header): (None, "pooled") for a
        prompt-only model, (name, name) for a known name, (name, "described as ...") for a name the model never
        saw whose family it did (it reads the name's description), (None, None) for the rest."""
        if not self.model_aware:
            return None, "pooled"
        name = self.mapping.get(served, served) if isinstance(served, str) and served else None
        if name is None:
            return None, None
        if self.known is None or name in self.known:
            return name, name
        description = describe(name)
        return (name, f"described as {description.text()}") if description.family in self.families else (None, None)
