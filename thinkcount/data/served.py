"""The served corpus (data.source: served): the proxy's traffic log, read by ingest's rules like any public trace
file, within an optional time window, alone or with the public traces (data.mix_real)."""
from collections import Counter
from datetime import timezone
from pathlib import Path

from thinkcount import UserError
from thinkcount.data.ingest import ingest_file
from thinkcount.data.real import real_corpus

LOG_FILES = "traffic-*.jsonl"


def utc_seconds(moment):
    """Unix seconds of a datetime; one without a zone is read as UTC (the log's clock)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def served_corpus(data):
    """(records, report): every request of the traffic log in data.served_dir that finished within
    [served_since, served_until) and carries a prompt and a trace; what was skipped is counted by reason."""
    folder = Path(data.served_dir)
    files = sorted(folder.glob(LOG_FILES))
    if not files:
        raise UserError(f"{folder}: no traffic log ({LOG_FILES}); serve with --traffic-log {folder} or copy the "
                        "proxy's log files there.")
    since, until = utc_seconds(data.served_since), utc_seconds(data.served_until)
    records, skipped = [], Counter()
    for path in files:
        got, problems, kind = ingest_file(path, name=path.name)
        if kind not in (None, "canonical"):
            raise UserError(f"{path}: not a traffic log (its records read as {kind}).")
        skipped.update({reason: entry["count"] for reason, entry in problems.by_reason.items()})
        for record in got:
            if "time" not in record:
                skipped["no_finish_time"] += 1
            elif (since is not None and record["time"] < since) or (until is not None and record["time"] >= until):
                skipped["outside_time_window"] += 1
            else:
                records.append(record)
    if not records:
        raise UserError(f"{folder}: no served request with a prompt and a trace in the time window "
                        f"(skipped: {dict(skipped) or 'none'}).")
    report = {"source": "served", "files": len(files), "rows_valid": len(records), "invalid": dict(skipped),
              "truncated": sum(r["truncated"] for r in records), "models": len({r["model"] for r in records}),
              "prompts": len({r["prompt_id"] for r in records}), "oracle_kendall_tau": None,
              "time_range": [min(r["time"] for r in records), max(r["time"] for r in records)]}
    if data.mix_real:
        public, public_report = real_corpus()
        records += public
        report["public_rows"] = public_report["rows_valid"]
    return records, report
