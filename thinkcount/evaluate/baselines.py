"""Baselines and controls, scored with the same yardstick on the same train rows as the methods:
prompt length, surface counts, TF-IDF ridge, the instruction's first word, the answering model alone, a
frozen-encoder probe, the oracle ceiling, and, on served traffic, the predictor that was served.

Each fits on the train rows' target (counts, wait_counts or think_chars) and returns (score, expected target) for
the test rows. The controls answer two questions about any fine-tuned method: is the signal more than the
opening word (first_word), and does fine-tuning beat a linear probe on the same encoder's frozen, mean-pooled
states (probe)?"""
import re

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from thinkcount import UserError
from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl
from thinkcount.data.records import KEY


def words(frame):
    return frame["text"].str.split().str.len().to_numpy(dtype=float)


def length_scores(train, test, target="counts"):
    """Prompt length in words; the target read off a least-squares line fitted on train."""
    if len(np.unique(words(train))) < 2:
        raise UserError(f"the length baseline needs train prompts of at least 2 different lengths; "
                        f"{len(train)} train rows have {len(np.unique(words(train)))}.")
    slope, intercept = np.polyfit(words(train), train[target], 1)
    score = words(test)
    return score, np.clip(slope * score + intercept, 1, None)


# What a careful reader can count in a prompt without understanding it: its size and shape, numbers, questions,
# and the words that ask for more (each, every, step) or constrain the answer (must, without, exactly).
SHAPE = {"chars": lambda t: len(t), "words": lambda t: len(t.split()), "lines": lambda t: t.count("\n") + 1,
         "sentences": lambda t: len(re.findall(r"[.!?]+(?:\s|$)", t)), "question_marks": lambda t: t.count("?"),
         "digit_groups": lambda t: len(re.findall(r"\d+", t)), "commas": lambda t: t.count(","),
         "colons": lambda t: t.count(":"), "list_items": lambda t: len(re.findall(r"(?m)^\s*(?:[-*]|\d+[.)])\s", t)),
         "quotes": lambda t: t.count('"'), "input_chars": lambda t: len(t.split("\n", 1)[1]) if "\n" in t else 0}
ASK_WORDS = ("each", "every", "all", "both", "step", "steps", "list", "explain", "describe", "compare", "why",
             "how", "write", "calculate", "solve", "prove", "summarize", "translate", "analyze", "example",
             "examples", "must", "without", "include", "exactly", "only", "not", "if", "and", "or", "words",
             "sentences", "paragraphs")


def surface_counts(texts):
    """One row per prompt: SHAPE's counts, then how often each ASK_WORDS word occurs (lower-cased), all log1p."""
    rows = []
    for text in texts:
        tokens = re.findall(r"[a-z]+", text.lower())
        rows.append([f(text) for f in SHAPE.values()] + [tokens.count(w) for w in ASK_WORDS])
    return np.log1p(np.asarray(rows, dtype=float))


def surface_scores(train, test, alpha, target="counts"):
    """Ridge on the log1p target over the prompt's surface counts: the cheap predictor a learned method must beat."""
    if len(train) < 2:
        raise UserError(f"the surface baseline cannot be fitted on {len(train)} train rows.")
    model = make_pipeline(FunctionTransformer(surface_counts), StandardScaler(), Ridge(alpha=alpha))
    model.fit(list(train["text"]), np.log1p(train[target]))
    score = model.predict(list(test["text"]))
    return score, np.expm1(score).clip(1, None)


def tfidf_scores(train, test, alpha, max_features, target="counts"):
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), max_features=max_features, sublinear_tf=True),
                          Ridge(alpha=alpha))
    try:
        model.fit(train["text"], np.log1p(train[target]))
    except ValueError as e:  # an empty vocabulary, or too few rows
        raise UserError(f"the TF-IDF baseline cannot be fitted on {len(train)} train rows ({e}).") from None
    score = model.predict(test["text"])
    return score, np.expm1(score).clip(1, None)


def first_word(frame):
    return frame["text"].str.split().str[0].fillna("").str.lower().str.strip(".,:;!?\"'")


def first_word_scores(train, test, target="counts"):
    """Train mean of the log1p target per first word of the prompt (the overall mean for unseen words)."""
    if train.empty:
        raise UserError("the first-word baseline has no train rows.")
    means = np.log1p(train[target]).groupby(first_word(train)).mean()
    score = first_word(test).map(means).fillna(float(np.log1p(train[target]).mean())).to_numpy()
    return score, np.expm1(score)


def model_scores(train, test, target="counts"):
    """Train mean of the log1p target per answering model (the overall mean for a model train has not seen): how
    far the model's name alone ranks traces, without reading the prompt."""
    if train.empty:
        raise UserError("the model baseline has no train rows.")
    means = np.log1p(train[target]).groupby(train["model"].fillna("")).mean()
    score = test["model"].fillna("").map(means).fillna(float(np.log1p(train[target]).mean())).to_numpy()
    return score, np.expm1(score)


def probe_scores(train, test, encoder, alpha, target="counts", batch_size=64):
    """Ridge on the log1p target over the frozen encoder's mean-pooled states. encoder: (name, its Encoder params)."""
    from thinkcount.methods.inference import predict_raw  # torch and transformers, for this baseline only
    from thinkcount.methods.models import build_model, resolve_source
    name, settings = encoder
    model, tokenizer = build_model(resolve_source(name, settings.source), 1, num_layers=settings.num_layers)
    embed = lambda frame: predict_raw(model, tokenizer, list(frame["text"]), settings.max_length,  # noqa: E731
                                      batch_size, pooled=True)
    ridge = Ridge(alpha=alpha).fit(embed(train), np.log1p(train[target]))
    score = ridge.predict(embed(test))
    return score, np.expm1(score).clip(1, None)


def served_scores(test):
    """What the served predictor said of each test request when it was served (data.source: served): the row a
    retrained model must beat on the newest traffic. None when the corpus has no served predictions."""
    if "served_score" not in test or test["served_score"].isna().any():
        return None
    return test["served_score"].to_numpy(float), test["served_expected"].to_numpy(float)


def oracle_scores(test):
    """The generator's hidden expected counts; None for a corpus without a generator (real data)."""
    oracle_rows = load_jsonl(paths.ORACLE)
    if not oracle_rows:
        return None
    merged = test[KEY].merge(pd.DataFrame(oracle_rows), on=KEY, how="left")
    if merged["expected_counts"].isna().any():
        raise UserError(f"{paths.ORACLE} does not cover the test split.")
    return merged["expected_counts"].to_numpy(), merged["expected_counts"].to_numpy()


# How each baseline kind scores the test rows, fitted on the train rows and spec's target (the FIXED kinds below
# need no train rows): (spec, train, test, encoder) -> (score, expected counts).
KINDS = {
    "length": lambda spec, train, test, encoder: length_scores(train, test, spec.target),
    "surface": lambda spec, train, test, encoder: surface_scores(train, test, spec.alpha, spec.target),
    "tfidf": lambda spec, train, test, encoder: tfidf_scores(train, test, spec.alpha, spec.max_features, spec.target),
    "first_word": lambda spec, train, test, encoder: first_word_scores(train, test, spec.target),
    "model": lambda spec, train, test, encoder: model_scores(train, test, spec.target),
    "probe": lambda spec, train, test, encoder: probe_scores(train, test, encoder, spec.alpha, spec.target),
}


# Kinds scored without train rows, from what the corpus carries: (test) -> (score, expected), or None when this
# corpus lacks it.
FIXED = {"oracle": oracle_scores, "served": served_scores}


def baseline_scores(spec, train, test, encoder):
    """spec's baseline fitted on the train rows and its target, scoring the test rows."""
    return KINDS[spec.kind](spec, train, test, encoder)
