"""Stage split: one train/val/test split shared by every method, stratified by prompt or, for served traffic,
by time (train on older requests, test on newer)."""
import pandas as pd

from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl, write_json, write_jsonl
from thinkcount.data.records import make_split, time_split
from thinkcount.pipeline import stage


def main(params):
    counts = pd.DataFrame(load_jsonl(paths.COUNTS))
    rule = params.split
    if rule.by == "time":
        split = time_split(counts, rule.seed, rule.val_fraction, rule.test_fraction)
    else:
        split = make_split(counts, rule.seed, rule.val_fraction, rule.test_fraction, rule.strata)
    write_jsonl(paths.SPLIT, split.to_dict("records"))
    sizes = split["split"].value_counts().to_dict()
    prompts = counts["prompt_id"].groupby(split["split"]).nunique().to_dict()
    report = {name: int(sizes.get(name, 0)) for name in ("train", "val", "test")}
    report["prompts"] = {name: int(prompts.get(name, 0)) for name in ("train", "val", "test")}
    write_json(paths.data_metrics("split"), report)
    print(f"split: {report}")


if __name__ == "__main__":
    stage.run(main)
