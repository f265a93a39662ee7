"""Stage split: one stratified train/val/test split shared by every method."""
import pandas as pd

from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl, write_json, write_jsonl
from thinkcount.data.records import make_split
from thinkcount.pipeline import stage


def main(params):
    counts = pd.DataFrame(load_jsonl(paths.COUNTS))
    split = make_split(counts, **params["split"])
    write_jsonl(paths.SPLIT, split.to_dict("records"))
    sizes = split["split"].value_counts().to_dict()
    write_json(paths.data_metrics("split"), {name: int(sizes.get(name, 0)) for name in ("train", "val", "test")})
    print(f"split: {sizes}")


if __name__ == "__main__":
    stage.run(main)
