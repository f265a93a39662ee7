"""Joining the pipeline's files into the frames that labeling, training and evaluation use."""
import pandas as pd

from thinkcount import UserError
from thinkcount.data import KEY
from thinkcount.jsonl import load_jsonl


def load_frame(variant=None):
    """Counts joined with the shared split, restricted to a variant's rows when one is named."""
    counts = pd.DataFrame(load_jsonl("data/counts.jsonl"))
    split = pd.DataFrame(load_jsonl("data/split.jsonl"))
    frame = counts.merge(split, on=KEY, how="inner", validate="one_to_one")
    if len(frame) != len(counts):
        raise UserError("data/split.jsonl does not cover data/counts.jsonl; rerun `dvc repro split`.")
    if variant is not None:
        keys = pd.DataFrame(load_jsonl(f"data/variants/{variant}.jsonl"), columns=KEY)
        frame = frame.merge(keys, on=KEY, how="inner")
    return frame.reset_index(drop=True)
