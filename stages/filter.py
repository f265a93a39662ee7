"""Stage filter: the named data variants, each with a report of what it dropped and why."""
import pandas as pd

from thinkcount import stage
from thinkcount.data import KEY, filter_variants
from thinkcount.jsonl import load_jsonl, write_json, write_jsonl


def main(params):
    counts = pd.DataFrame(load_jsonl("data/counts.jsonl"))
    for name, (kept, report) in filter_variants(counts, **params["filter"]).items():
        write_jsonl(f"data/variants/{name}.jsonl", kept[KEY].to_dict("records"))
        write_json(f"metrics/data/{name}.json", report)
        print(f"filter {name}: kept {report['rows_kept']} of {report['rows_in']}")


if __name__ == "__main__":
    stage.run(main)
