"""The real profile's corpus (data.source: real): every public trace file of profiles/real_sources.tsv, fetched
(downloaded, or copied from the mirror named by THINKCOUNT_TRACES_MIRROR) with its sha256 checked, then ingested."""
import os
import tempfile
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from thinkcount.data.fetch import MIRROR_VARIABLE, fetch, read_sources
from thinkcount.data.ingest import ingest_file

TRACE_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")  # the rest are licence files, kept beside


def trace_files(sources):
    return [s for s in sources if s["file"].endswith(TRACE_SUFFIXES)]


def real_corpus(mirror=None):
    """(records, report): the records of every trace file, keyed by the file's name under the mirror, and what
    was read, skipped (by reason, per file) and truncated."""
    mirror = mirror or os.environ.get(MIRROR_VARIABLE) or None
    sources = read_sources()
    records, skipped, per_file = [], Counter(), {}
    with tempfile.TemporaryDirectory() as tmp:
        fetch(tmp, mirror, sources)
        for source in tqdm(trace_files(sources), desc="ingest", unit="file"):
            got, problems, _ = ingest_file(Path(tmp) / source["file"], name=source["file"])
            records += got
            skipped.update({reason: entry["count"] for reason, entry in problems.by_reason.items()})
            per_file[source["file"]] = {"records": len(got), "expected": int(source["traces"]),
                                        **({"skipped": problems.by_reason} if problems.total else {})}
    report = {"source": "real", "files": len(per_file), "rows_valid": len(records), "invalid": dict(skipped),
              "truncated": sum(r["truncated"] for r in records), "models": len({r["model"] for r in records}),
              "by_source": by_source(records),
              "prompts": len({r["prompt_id"] for r in records}), "oracle_kendall_tau": None,
              "files_off_manifest": {k: v for k, v in per_file.items() if v["records"] != v["expected"]}}
    return records, report


def source_of(worker_id):
    """The source of a record: its trace file's repository (`owner__repo/file` -> owner/repo); `embedded` for the
    generated corpus."""
    if isinstance(worker_id, str) and "/" in worker_id:
        return worker_id.split("/", 1)[0].replace("__", "/", 1)
    return "embedded"


def by_source(records):
    """{source: {traces, truncated, prompts, models}} of ingested records."""
    out = {}
    for r in records:
        entry = out.setdefault(source_of(r["worker_id"]),
                               {"traces": 0, "truncated": 0, "prompts": set(), "models": set()})
        entry["traces"] += 1
        entry["truncated"] += bool(r["truncated"])
        entry["prompts"].add(r["prompt_id"])
        entry["models"].add(r["model"])
    return {name: {**e, "prompts": len(e["prompts"]), "models": len(e["models"])} for name, e in sorted(out.items())}
