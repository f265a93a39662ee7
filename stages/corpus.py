"""Stage corpus: generate the embedded corpus, or validate and normalise the user's JSONL."""
from thinkcount import corpus, stage
from thinkcount.data import compute_counts, oracle_tau
from thinkcount.jsonl import write_json, write_jsonl

CORPUS, ORACLE, REPORT = "data/raw/corpus.jsonl", "data/raw/oracle.jsonl", "metrics/data/corpus.json"


def main(params):
    data = params["data"]
    if data["source"] == "sample":
        records, oracle = corpus.generate(data["sample_size"], data["seed"], workers=data["sample_workers"])
        report = {"source": "sample", "rows_read": len(records), "rows_valid": len(records), "invalid": {},
                  "oracle_kendall_tau": oracle_tau(compute_counts(records, **params["counts"]), oracle)}
    else:
        records, problems, rows, notes = corpus.validate_records(data["source"])
        oracle = []  # real data has no generator to ask
        report = {"source": data["source"], "rows_read": rows, "rows_valid": len(records),
                  "invalid": problems.by_reason, "notes": notes, "oracle_kendall_tau": None}
        if problems.total:
            print(f"warning: {data['source']}: skipped {problems.total} invalid records: {problems.summary()}")
    report.update(corpus.prompt_stats(records, oracle))
    write_jsonl(CORPUS, records)
    write_jsonl(ORACLE, oracle)
    write_json(REPORT, report)
    print(f"corpus: {len(records)} records -> {CORPUS}")


if __name__ == "__main__":
    stage.run(main)
