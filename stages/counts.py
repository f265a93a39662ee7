"""Stage counts: keyword counts, "Wait" counts and think length per record."""
from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl, write_json, write_jsonl
from thinkcount.data.records import compute_counts, counts_report
from thinkcount.pipeline import stage


def main(params):
    records = load_jsonl(paths.CORPUS)
    counting = params.counts
    counts = compute_counts(records, counting)
    report, warning = counts_report(records, counts, counting.think_start)
    if warning:
        print(f"warning: {warning}")
    write_jsonl(paths.COUNTS, counts.to_dict("records"))
    write_json(paths.data_metrics("counts"), report)
    print(f"counts: {len(counts)} rows, median counts {report['counts']['p50']}")


if __name__ == "__main__":
    stage.run(main)
