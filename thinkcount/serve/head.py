"""An adapted head: a light model over a base model's prediction and the prompt's surface counts, fitted on a
deployment's own traces (`python -m thinkcount adapt`, thinkcount/serve/adapt.py) and stored in the model folder
beside the base (head.json), so that Predictor.load serves base and head together.

Its score is a prediction of log(1 + counts) by one of four mixes, chosen by cross-validation on the own traces:
  base      the base's own log(1 + expected counts): nothing learned
  scratch   a ridge over the prompt's surface counts alone
  residual  the base plus a ridge over the surface counts fitted to what the base gets wrong
  stacked   a ridge over the surface counts and the base's prediction together
One ridge per answering model with enough own traces, and one pooled ridge for the rest."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thinkcount.evaluate.baselines import surface_counts

HEAD = "head.json"
MIXES = ("base", "scratch", "residual", "stacked")
POOLED = ""  # the key of the pooled ridge in head.json


def design(prompts, base_log):
    """The head's inputs: each prompt's surface counts (log1p) and the base's log(1 + expected counts) last."""
    return np.column_stack([surface_counts(prompts), np.asarray(base_log, float)])


@dataclass(frozen=True)
class Ridge:
    """A fitted ridge on standardised inputs: y = ((x - mean) / scale) @ coef + intercept."""
    coef: tuple
    intercept: float
    mean: tuple
    scale: tuple

    @classmethod
    def fit(cls, x, y, alpha):
        mean, scale = x.mean(0), x.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        z = (x - mean) / scale
        coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
        return cls(tuple(coef), float(y.mean()), tuple(mean), tuple(scale))

    def predict(self, x):
        return ((x - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.coef) + self.intercept


def columns(mix, x):
    """The inputs a mix's ridge reads: the surface counts, or those and the base's prediction."""
    return x if mix == "stacked" else x[:, :-1]


def mix_score(mix, ridge, x):
    """log(1 + counts) predicted by a mix (ridge is None for `base`)."""
    base = x[:, -1]
    if mix == "base":
        return base
    fitted = ridge.predict(columns(mix, x))
    return base + fitted if mix == "residual" else fitted


def fit_mix(mix, x, y, alpha):
    """The ridge of a mix fitted to log(1 + counts) y (None for `base`)."""
    if mix == "base":
        return None
    return Ridge.fit(columns(mix, x), y - x[:, -1] if mix == "residual" else y, alpha)


@dataclass(frozen=True)
class AdaptedHead:
    mix: str
    ridges: dict  # model name (POOLED for the rest) -> Ridge, or None for the base mix

    def apply(self, prompts, models, base_records):
        """Prediction records {score, expected_counts, base_expected_counts} for prompts answered by models."""
        base_log = np.log1p([r["expected_counts"] for r in base_records])
        x = design(prompts, base_log)
        keys = [m if m in self.ridges else POOLED for m in models]
        score = np.empty(len(prompts))
        for key in set(keys):
            rows = np.array([k == key for k in keys])
            score[rows] = mix_score(self.mix, self.ridges[key], x[rows])
        return [{"score": float(s), "expected_counts": float(max(np.expm1(s), 1.0)),
                 "base_expected_counts": r["expected_counts"]} for s, r in zip(score, base_records)]

    def save(self, folder):
        ridges = {k: (None if r is None else r.__dict__) for k, r in self.ridges.items()}
        (Path(folder) / HEAD).write_text(json.dumps({"mix": self.mix, "ridges": ridges}, indent=1) + "\n")

    @classmethod
    def load(cls, folder):
        """The head of an adapted folder, or None for a folder without one."""
        path = Path(folder) / HEAD
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(data["mix"], {k: (None if r is None else Ridge(**{f: (tuple(v) if isinstance(v, list) else v)
                                                                    for f, v in r.items()}))
                                 for k, r in data["ridges"].items()})
