"""Tabulate the per-stage wall times a pipeline run recorded with THINKCOUNT_STAGE_TIMES=FILE.

    python benchmarks/stage_times.py FILE > reports/stage_times.md
"""
import json
import sys
from collections import defaultdict


def main(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    by_kind = defaultdict(list)
    for r in rows:
        by_kind[r["stage"].split("@")[0]].append(r["seconds"])
    total = sum(r["seconds"] for r in rows)
    print(f"# Stage wall times\n\n{len(rows)} stages, {total:.0f} s in stage processes (imports included; dvc's own "
          "work between stages is not counted here).\n")
    print("| stage kind | stages | total s | mean s | max s |\n|---|---|---|---|---|")
    for kind, secs in sorted(by_kind.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {kind} | {len(secs)} | {sum(secs):.0f} | {sum(secs) / len(secs):.1f} | {max(secs):.1f} |")
    print("\n| stage | seconds |\n|---|---|")
    for r in sorted(rows, key=lambda r: -r["seconds"]):
        print(f"| {r['stage']} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
