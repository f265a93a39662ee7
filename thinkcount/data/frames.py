"""Joining the pipeline's files into the frames that labeling, training and evaluation use."""
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
