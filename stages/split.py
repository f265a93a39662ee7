"""Stage split: one stratified train/val/test split shared by every method."""
import pandas as pd

from thinkcount import stage
from thinkcount.data import make_split
from thinkcount.jsonl import load_jsonl, write_json, write_jsonl


def main(params):
    counts = pd.DataFrame(load_jsonl("data/counts.jsonl"))
    split = make_split(counts, **params["split"])
    write_jsonl("data/split.jsonl", split.to_dict("records"))
    sizes = split["split"].value_counts().to_dict()
    write_json("metrics/data/split.json", {name: int(sizes.get(name, 0)) for name in ("train", "val", "test")})
    print(f"split: {sizes}")


if __name__ == "__main__":
    stage.run(main)
