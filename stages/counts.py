"""Stage counts: keyword counts, "Wait" counts and think length per record."""
import numpy as np

from thinkcount import stage
from thinkcount.data import compute_counts
from thinkcount.jsonl import load_jsonl, write_json, write_jsonl

QUANTILES = [25, 50, 75, 90, 95, 99]


def main(params):
    counts = compute_counts(load_jsonl("data/raw/corpus.jsonl"), params["counts"]["keywords"])
    write_jsonl("data/counts.jsonl", counts.to_dict("records"))
    report = {col: {**{f"p{q}": float(np.percentile(counts[col], q)) for q in QUANTILES},
                    "max": int(counts[col].max()), "mean": float(counts[col].mean())}
              for col in ("counts", "wait_counts", "think_chars")}
    report["rows"] = len(counts)
    write_json("metrics/data/counts.json", report)
    print(f"counts: {len(counts)} rows, median counts {report['counts']['p50']}")


if __name__ == "__main__":
    stage.run(main)
