"""Joining the pipeline's files into the frames that labeling, training and evaluation use."""
import re

import numpy as np
import pandas as pd

from thinkcount import UserError
from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl
from thinkcount.data.records import KEY


def load_frame(variant=None):
    """Counts joined with the shared split, restricted to a variant's rows when one is named."""
    counts = pd.DataFrame(load_jsonl(paths.COUNTS))
    split = pd.DataFrame(load_jsonl(paths.SPLIT))
    frame = counts.merge(split, on=KEY, how="inner", validate="one_to_one")
    if len(frame) != len(counts):
        raise UserError(f"{paths.SPLIT} does not cover {paths.COUNTS}; rerun `dvc repro split`.")
    if variant is not None:
        keys = pd.DataFrame(load_jsonl(paths.variant(variant)), columns=KEY)
        frame = frame.merge(keys, on=KEY, how="inner")
    return frame.reset_index(drop=True)


def restrict_models(frame, pattern):
    """The train and val rows answered by a model whose name matches pattern (a regular expression), and every
    test row: a method trained on one model family and tested on all."""
    if pattern is None:
        return frame
    kept = frame[model_matches(frame["model"], pattern) | (frame["split"] == "test")].reset_index(drop=True)
    if not (kept["split"] == "train").any():
        raise UserError(f"no train rows come from a model matching {pattern!r}.")
    return kept


def mean_of_samples(frame, target):
    """The target with each train and val row's value replaced by the mean over its (prompt, model) pair's
    samples, in log1p space: a prompt-only predictor is taught the expected effort, not one draw of it. Test rows
    keep their single samples."""
    pair = frame["prompt_id"].astype(str) + "|" + frame["model"].fillna("").astype(str)
    logs = np.log1p(frame[target].astype(float))
    fitted = frame["split"].isin(["train", "val"])
    mean = logs[fitted].groupby(pair[fitted]).transform("mean")
    return frame[target].astype(float).mask(fitted, np.expm1(mean))


def model_matches(models, pattern):
    """Whether each answering model's name (unknown: "") holds a match of the regular expression pattern."""
    regex = re.compile(pattern)
    return models.map(lambda m: bool(regex.search(m)) if isinstance(m, str) else bool(regex.search(""))).to_numpy(bool)
