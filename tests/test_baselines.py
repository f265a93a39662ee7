"""The surface-count baseline: what it counts, and that it finds a target that hides in the prompt's surface."""
from typing import get_args

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from thinkcount.evaluate.baselines import (ASK_WORDS, FIXED, KINDS, SHAPE, length_scores, model_scores, probe_scores,
                                          surface_counts, surface_scores)
from thinkcount.pipeline.config import Baseline, Encoder


def test_surface_counts_are_what_a_reader_counts():
    text = "Explain each step. Why?\nInput: 12 apples, 3 pears"
    names = [*SHAPE, *(f"word {w}" for w in ASK_WORDS)]  # SHAPE's "words" is a length, ASK_WORDS' the word
    counts = dict(zip(names, np.expm1(surface_counts([text])[0]).round().astype(int)))
    assert (counts["lines"], counts["sentences"], counts["question_marks"]) == (2, 2, 1)
    assert (counts["digit_groups"], counts["commas"], counts["colons"]) == (2, 1, 1)
    assert counts["input_chars"] == len("Input: 12 apples, 3 pears")
    assert [counts[f"word {w}"] for w in ("each", "step", "why", "steps", "every")] == [1, 1, 1, 0, 0]


def frame(n, seed):
    """Prompts whose counts grow with their question marks while their length in words is noise."""
    rng = np.random.default_rng(seed)
    questions, filler = rng.integers(0, 6, n), rng.integers(1, 30, n)
    text = [" ".join(["word"] * f) + " why" + "?" * q for f, q in zip(filler, questions)]
    return pd.DataFrame({"text": text, "counts": 1 + 10 * questions + rng.integers(0, 3, n)})


def test_the_surface_baseline_finds_what_length_misses():
    train, test = frame(200, 0), frame(100, 1)
    surface, expected = surface_scores(train, test, alpha=1.0)
    length, _ = length_scores(train, test)
    assert kendalltau(surface, test["counts"]).statistic > 0.8
    assert abs(kendalltau(length, test["counts"]).statistic) < 0.2
    assert expected.min() >= 1


def test_the_model_baseline_ranks_by_each_model_s_train_mean_and_falls_back_to_the_overall_mean():
    train = pd.DataFrame({"model": ["a", "a", "b", None], "counts": [0, 8, 63, 3]})
    test = pd.DataFrame({"model": ["b", "a", "unseen", None]})
    score, expected = model_scores(train, test)
    # a: mean(log 1, log 9) = log 3; b: log 64; unseen: the mean of all four log1p counts; None is its own model.
    overall = (np.log(1) + np.log(9) + np.log(64) + np.log(4)) / 4
    assert score == pytest.approx([np.log(64), np.log(3), overall, np.log(4)])
    assert expected == pytest.approx([63, 2, np.exp(overall) - 1, 3])


def test_the_probe_fits_a_ridge_on_the_frozen_encoder_s_states_through_the_typed_encoder_entry(tiny_encoders):
    """Two prompt types whose counts differ tenfold: even a random tiny encoder's pooled states tell them apart."""
    def rows(n):
        return pd.DataFrame({"text": ["Why is the sky blue? How does light scatter?" if i % 2 else "List colors."
                                      for i in range(n)], "counts": [40 if i % 2 else 4 for i in range(n)]})
    train, test = rows(40), rows(10)
    encoder = Encoder(source=tiny_encoders["bert"], batch_size=8, learning_rate=1e-3, max_length=32)
    score, expected = probe_scores(train, test, ("tiny-bert", encoder), alpha=1.0)
    # Batches pad differently, so equal prompts may score a float's noise apart: compare the two groups, not ties.
    long = np.asarray(test["counts"]) == 40
    assert np.min(score[long]) > np.max(score[~long])
    assert np.min(expected[long]) > 3 * np.max(expected[~long])


def test_every_baseline_kind_the_configuration_accepts_scores_and_no_other():
    accepted = set(get_args(Baseline.model_fields["kind"].annotation))
    # the oracle reads the generator and `served` the served predictor's logged scores, not train rows
    assert len(accepted) == 8 and accepted == set(KINDS) | set(FIXED) and not set(KINDS) & set(FIXED)
