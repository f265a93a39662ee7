"""Baselines scored with the same yardstick: prompt length, TF-IDF ridge, and the oracle ceiling."""
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from thinkcount import UserError
from thinkcount.data import KEY


def length_scores(train, test):
    """Prompt length in words; counts read off a least-squares line fitted on train."""
    words = lambda frame: frame["text"].str.split().str.len().to_numpy(dtype=float)  # noqa: E731
    if len(np.unique(words(train))) < 2:
        raise UserError(f"the length baseline needs train prompts of at least 2 different lengths; "
                        f"{len(train)} train rows have {len(np.unique(words(train)))}.")
    slope, intercept = np.polyfit(words(train), train["counts"], 1)
    score = words(test)
    return score, np.clip(slope * score + intercept, 1, None)


def tfidf_scores(train, test, alpha, max_features):
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), max_features=max_features, sublinear_tf=True),
                          Ridge(alpha=alpha))
    try:
        model.fit(train["text"], np.log1p(train["counts"]))
    except ValueError as e:  # an empty vocabulary, or too few rows
        raise UserError(f"the TF-IDF baseline cannot be fitted on {len(train)} train rows ({e}).") from None
    score = model.predict(test["text"])
    return score, np.expm1(score).clip(1, None)


def oracle_scores(test, oracle_rows):
    if not oracle_rows:
        raise UserError("no oracle for this corpus (real data has none).")
    merged = test[KEY].merge(pd.DataFrame(oracle_rows), on=KEY, how="left")
    if merged["expected_counts"].isna().any():
        raise UserError("data/raw/oracle.jsonl does not cover the test split.")
    return merged["expected_counts"].to_numpy(), merged["expected_counts"].to_numpy()
