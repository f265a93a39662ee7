"""JSONL reading and writing that accounts for every bad line instead of crashing or dropping it."""
import json
from pathlib import Path

from thinkcount import UserError

MAX_LINES_SHOWN = 5


class Problems:
    """Counts problems by reason and keeps the line numbers of the first few of each."""

    def __init__(self):
        self.by_reason = {}

    def add(self, reason, line_no):
        entry = self.by_reason.setdefault(reason, {"count": 0, "lines": []})
        entry["count"] += 1
        if len(entry["lines"]) < MAX_LINES_SHOWN:
            entry["lines"].append(line_no)

    @property
    def total(self):
        return sum(e["count"] for e in self.by_reason.values())

    def summary(self):
        return "; ".join(f"{r}: {e['count']} (lines {e['lines']})" for r, e in self.by_reason.items())


def read_jsonl(path, problems=None):
    """Yield (line_no, object) for each line that parses as a JSON object; count the others."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    with path.open(encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
            if not isinstance(obj, dict):
                if problems is None:
                    raise UserError(f"{path}, line {line_no}: not a JSON object.")
                problems.add("malformed_json", line_no)
                continue
            yield line_no, obj


def load_jsonl(path):
    """Read a JSONL file that the pipeline itself wrote: any bad line is an error."""
    return [obj for _, obj in read_jsonl(path)]


def write_jsonl(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    return json.loads(path.read_text(encoding="utf-8"))
