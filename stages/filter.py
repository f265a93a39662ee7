"""Stage filter: the named data variants, each with a report of what it dropped and why."""
import pandas as pd

from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl, write_json, write_jsonl
from thinkcount.data.records import KEY, filter_variants
from thinkcount.pipeline import stage


def main(params):
    counts = pd.DataFrame(load_jsonl(paths.COUNTS))
    rules = params.filter
    variants = filter_variants(counts, rules.max_counts, rules.long_think_chars, rules.max_long_waits,
                               rules.keep_truncated)
    for name, (kept, report) in variants.items():
        write_jsonl(paths.variant(name), kept[KEY].to_dict("records"))
        write_json(paths.data_metrics(name), report)
        print(f"filter {name}: kept {report['rows_kept']} of {report['rows_in']}")


if __name__ == "__main__":
    stage.run(main)
