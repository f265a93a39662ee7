"""Which name a model-aware predictor knows a request's model by.

Engines serve names that differ from the ones in the training data (`deepseek-ai/DeepSeek-R1-Distill-Llama-8B`
against `deepseek/deepseek-r1-distill-llama-8b`), so the proxy maps a request's `model` through --model-map (a
JSON or YAML file of served name: training name; a name not in it stands for itself) and checks the result against
the names the model was trained on (training_models.json in its folder). A name it does not know is scored by
--fallback-model, a prompt-only model, when one is given; otherwise the request goes on unscored at the neutral
priority (the proxy never refuses a request for its predictor), and /score refuses it with 422."""
import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from thinkcount import UserError
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

    def resolve(self, served):
        """(the name to score with, the label for the x-thinkcount-model header): (None, "pooled") for a
        prompt-only model, (name, name) for a known name, (None, None) for one the model does not know."""
        if not self.model_aware:
            return None, "pooled"
        name = self.mapping.get(served, served) if isinstance(served, str) and served else None
        if name is None or (self.known is not None and name not in self.known):
            return None, None
        return name, name
