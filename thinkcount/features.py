"""Prompt-only features: the k-means labeling's inputs, m08's marker tokens and the leakage audit."""
import re

import numpy as np

CUES = {
    "explain": r"\b(explain|describe|analy[sz]e|overview|outline|understand)\b",
    "creative": r"\b(write|compose|create|poem|story|haiku|slogan|tagline|limerick|song)\b",
    "calculate": r"\b(calculate|compute|solve|percent|average|how many)\b|\d",
    "list": r"\b(list|name|identify|examples?|tips)\b",
    "compare": r"\b(compare|contrast|differences?|versus|vs\.?|relate)\b",
    "conditional": r"\b(if|assume|assuming|suppose|given that|unless)\b",
    "why": r"\bwhy\b",
    "how": r"\bhow\b",
}
CUE_PATTERNS = {name: re.compile(rx, re.IGNORECASE) for name, rx in CUES.items()}

# The columns k-means clusters on, besides the target itself.
KMEANS_FEATURES = ["word_count", "char_count", "question_marks", "has_explain", "has_creative",
                   "has_calculate", "has_list", "has_why", "has_how"]
MARKERS = ["[SHORT]", "[MEDIUM]", "[LONG]", "[EXPLAIN]", "[CREATIVE]", "[CALCULATE]", "[LIST]", "[COMPARE]",
           "[CONDITIONAL]", "[MULTI_Q]", "[WHY]", "[HOW]"]


def prompt_features(text):
    words = len(text.split())
    features = {"word_count": words, "char_count": len(text), "question_marks": text.count("?")}
    for name, pattern in CUE_PATTERNS.items():
        features[f"has_{name}"] = int(bool(pattern.search(text)))
    return features


def feature_matrix(texts, columns=None):
    """Rows of prompt features as a float array, in the order of `columns` (all features by default)."""
    columns = columns or list(prompt_features(""))
    rows = [prompt_features(t) for t in texts]
    return np.array([[row[c] for c in columns] for row in rows], dtype=float)


def markers_for(text):
    f = prompt_features(text)
    size = "[SHORT]" if f["word_count"] < 10 else "[MEDIUM]" if f["word_count"] < 25 else "[LONG]"
    flags = [("has_explain", "[EXPLAIN]"), ("has_creative", "[CREATIVE]"), ("has_calculate", "[CALCULATE]"),
             ("has_list", "[LIST]"), ("has_compare", "[COMPARE]"), ("has_conditional", "[CONDITIONAL]"),
             ("has_why", "[WHY]"), ("has_how", "[HOW]")]
    markers = [size] + [m for key, m in flags if f[key]]
    if f["question_marks"] > 1:
        markers.append("[MULTI_Q]")
    return markers


def prepare_text(text, markers):
    """The text a model sees: with markers, the prompt is prefixed by its feature marker tokens."""
    return " ".join(markers_for(text)) + " " + text if markers else text
