"""Prompt-only features as data: the k-means labeling's inputs, marker tokens and the leakage audit.

A feature set comes from `features:` in params.yaml and is saved beside each model that uses it,
so the predictor prepares text exactly as training did. Every feature reads the prompt lower-cased.
"""
import re
from dataclasses import dataclass

import numpy as np

from thinkcount.data.models import describe

NUMERIC = {
    "word_count": lambda text: len(text.split()),
    "char_count": len,
    "question_marks": lambda text: text.count("?"),
}
LENGTH_MARKERS = ("[SHORT]", "[MEDIUM]", "[LONG]")


@dataclass(frozen=True)
class FeatureSet:
    """numeric: NUMERIC columns; cues: ((name, words or None), ...) in order, None meaning "more than
    one '?'"; match: substring (the seed's rule: "how" fires on "show") or word; length: the word
    counts below which a prompt is [SHORT] and [MEDIUM] (empty: no length marker)."""
    name: str
    match: str
    numeric: tuple
    cues: tuple
    length: tuple

    @classmethod
    def from_dict(cls, name, spec):
        cues = tuple((cue, None if words == "multi_question" else tuple(words)) for cue, words in spec["cues"].items())
        return cls(name, spec["match"], tuple(spec.get("numeric", ())), cues, tuple(spec.get("length", ())))

    def to_dict(self):
        """The saved form (with its name), as label configurations keep it."""
        return {"name": self.name, "match": self.match, "numeric": list(self.numeric), "length": list(self.length),
                "cues": {cue: "multi_question" if words is None else list(words) for cue, words in self.cues}}

    @property
    def columns(self):
        return list(self.numeric) + (["length_marker"] if self.length else []) + [cue for cue, _ in self.cues]

    @property
    def tokens(self):
        """Every marker token this set can emit, to add to a tokenizer."""
        return (list(LENGTH_MARKERS) if self.length else []) + [f"[{cue}]" for cue, _ in self.cues]

    def fires(self, words, text):
        if words is None:
            return text.count("?") > 1
        if self.match == "substring":
            return any(w in text for w in words)
        return any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)

    def length_marker(self, text):
        return sum(len(text.split()) >= bound for bound in self.length)

    def row(self, text):
        text = text.lower()
        return ([NUMERIC[n](text) for n in self.numeric] + ([self.length_marker(text)] if self.length else [])
                + [int(self.fires(words, text)) for _, words in self.cues])

    def matrix(self, texts):
        return np.array([self.row(t) for t in texts], dtype=float).reshape(len(texts), len(self.columns))

    def markers(self, text):
        """Marker tokens in the set's order: the length marker first, then each cue that fires."""
        lower = text.lower()
        out = [LENGTH_MARKERS[self.length_marker(lower)]] if self.length else []
        return out + [f"[{cue}]" for cue, words in self.cues if self.fires(words, lower)]


def feature_set(features, name):
    """The FeatureSet named name in params' `features` mapping."""
    return FeatureSet.from_dict(name, features[name].model_dump())


def prepare_text(text, markers):
    """The text a model sees: with a feature set, the prompt is prefixed by its marker tokens."""
    return " ".join(markers.markers(text) + [text]) if markers else text


def model_text(text, model):
    """A model-aware method's input: the answering model's description (thinkcount/data/models.py) before the
    prompt, so a name it never saw is read by what it shares with those it did."""
    return f"[{describe(model).text()}] {text}"  # pandas reads null as NaN: an unknown model


def frame_texts(frame, model_token):
    """The prompt texts of a frame's rows (columns text, model), model-aware when model_token."""
    return [model_text(t, m) for t, m in zip(frame["text"], frame["model"])] if model_token else list(frame["text"])
