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
    return frame.reset_index(drop=True) if variant is None else variant_rows(frame, variant)


def variant_rows(frame, variant):
    """The rows of frame that the filter stage kept in variant."""
    keys = pd.DataFrame(load_jsonl(paths.variant(variant)), columns=KEY)
    return frame.merge(keys, on=KEY, how="inner").reset_index(drop=True)


def require_target(frame, target):
    """Refuse a target that some rows lack (reasoning_tokens where the export records no token usage): a row
    without its target can be neither learned from nor scored."""
    missing = int(frame[target].isna().sum())
    if missing:
        raise UserError(f"{missing} of {len(frame)} records have no {target} (the export does not record it for "
                        f"them); rank by think_chars instead.")
    return frame


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
    pair = sample_pairs(frame)
    logs = np.log1p(frame[target].astype(float))
    fitted = frame["split"].isin(["train", "val"])
    mean = logs[fitted].groupby(pair[fitted]).transform("mean")
    return frame[target].astype(float).mask(fitted, np.expm1(mean))


def sample_pairs(frame):
    """Each row's (prompt, model) pair as one string: the rows that are samples of one question to one model."""
    return frame["prompt_id"].astype(str) + "|" + frame["model"].fillna("").astype(str)


def model_matches(models, pattern):
    """Whether each answering model's name (unknown: "") holds a match of the regular expression pattern."""
    regex = re.compile(pattern)
    unknown = bool(regex.search(""))
    return models.map(lambda m: bool(regex.search(m)) if isinstance(m, str) else unknown).to_numpy(bool)
