"""Stage corpus: generate the embedded corpus, fetch and ingest the public traces, read the proxy's traffic log,
or validate the user's JSONL."""
from thinkcount.core import paths
from thinkcount.core.jsonl import write_json, write_jsonl
from thinkcount.data import corpus
from thinkcount.data.real import real_corpus
from thinkcount.data.served import served_corpus
from thinkcount.data.records import compute_counts, oracle_tau
from thinkcount.pipeline import stage


def main(params):
    data, counting = params.data, params.counts
    if data.source == "sample":
        records, oracle = corpus.generate(data.sample_size, data.seed, workers=data.sample_workers)
        counts = compute_counts(records, counting)
        report = {"source": "sample", "rows_read": len(records), "rows_valid": len(records), "invalid": {},
                  "oracle_kendall_tau": oracle_tau(counts, oracle)}
    elif data.source == "real":
        (records, report), oracle = real_corpus(), []
        if report["files_off_manifest"]:
            print(f"warning: files whose records differ from the listed traces: {report['files_off_manifest']}")
    elif data.source == "served":
        (records, report), oracle = served_corpus(data), []
    else:
        records, problems, rows, notes = corpus.validate_records(data.source)
        oracle = []  # real data has no generator to ask
        report = {"source": data.source, "rows_read": rows, "rows_valid": len(records),
                  "invalid": problems.by_reason, "notes": notes, "oracle_kendall_tau": None}
        if problems.total:
            print(f"warning: {data.source}: skipped {problems.total} invalid records: {problems.summary()}")
    report.update(corpus.prompt_stats(records, oracle))
    write_jsonl(paths.CORPUS, records)
    write_jsonl(paths.ORACLE, oracle)
    write_json(paths.data_metrics("corpus"), report)
    print(f"corpus: {len(records)} records -> {paths.CORPUS}")


if __name__ == "__main__":
    stage.run(main)
