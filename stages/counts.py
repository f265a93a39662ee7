"""Stage counts: keyword counts, "Wait" counts and think length per record."""
from thinkcount import stage
from thinkcount.data import compute_counts, counts_report
from thinkcount.jsonl import load_jsonl, write_json, write_jsonl


def main(params):
    records = load_jsonl("data/raw/corpus.jsonl")
    counts = compute_counts(records, **params["counts"])
    report, warning = counts_report(records, counts, params["counts"]["think_start"])
    if warning:
        print(f"warning: {warning}")
    write_jsonl("data/counts.jsonl", counts.to_dict("records"))
    write_json("metrics/data/counts.json", report)
    print(f"counts: {len(counts)} rows, median counts {report['counts']['p50']}")


if __name__ == "__main__":
    stage.run(main)
