"""JSON reading and writing that accounts for every bad record instead of crashing or dropping it."""
import bisect
import codecs
import gzip
import json
import re
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


WHITESPACE = re.compile(r"\s*")
RECORD_START = re.compile(r"^[{\[]", re.MULTILINE)  # where a top-level value may start after a broken one


def read_json_values(path, problems):
    """Yield (line_no, value) for each JSON value of a user's file; count each bad record once.

    Reads JSON Lines, values pretty-printed across lines, or one JSON array, optionally gzipped
    (.gz), with or without a UTF-8 byte-order mark. A value that does not parse is counted as
    malformed_json at its first line, and reading resumes at the next line that starts with { or [.
    A value touching a line that is not valid UTF-8 is counted as invalid_utf8: no byte is replaced."""
    text, bad_lines = decode_lines(read_bytes(path))
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    line_of = lambda pos: bisect.bisect_right(starts, pos)  # noqa: E731
    bad_sorted = sorted(bad_lines)

    def touches_bad(a, b):
        i = bisect.bisect_left(bad_sorted, line_of(a))
        return i < len(bad_sorted) and bad_sorted[i] <= line_of(max(a, b - 1))
    decoder, pos = json.JSONDecoder(), WHITESPACE.match(text).end()
    while pos < len(text):
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            problems.add("invalid_utf8" if line_of(pos) in bad_lines else "malformed_json", line_of(pos))
            resume = RECORD_START.search(text, starts[line_of(pos)] if line_of(pos) < len(starts) else len(text))
            pos = resume.start() if resume else len(text)
            continue
        if isinstance(value, list) and pos == WHITESPACE.match(text).end() and not text[end:].strip():
            yield from array_elements(text, pos, decoder, line_of, touches_bad, problems)
            return
        if touches_bad(pos, end):
            problems.add("invalid_utf8", line_of(pos))
        else:
            yield line_of(pos), value
        pos = WHITESPACE.match(text, end).end()


def array_elements(text, pos, decoder, line_of, touches_bad, problems):
    """The elements of a file that is one JSON array (already known to parse), with their lines."""
    pos = WHITESPACE.match(text, pos + 1).end()
    while text[pos] != "]":
        value, end = decoder.raw_decode(text, pos)
        if touches_bad(pos, end):
            problems.add("invalid_utf8", line_of(pos))
        else:
            yield line_of(pos), value
        pos = WHITESPACE.match(text, end).end()
        pos = WHITESPACE.match(text, pos + 1).end() if text[pos] == "," else pos


def read_bytes(path):
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory; name a .jsonl, .json or .jsonl.gz file.")
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise UserError(f"{path}: not a readable gzip file ({e}).") from None
    return raw.removeprefix(codecs.BOM_UTF8)


def decode_lines(raw):
    """Decode line by line; return the text and the numbers of lines that are not valid UTF-8.

    Bad lines are decoded with replacement only to keep positions: values touching them are never used."""
    lines, bad = [], set()
    for n, line in enumerate(raw.split(b"\n"), start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            bad.add(n)
            lines.append(line.decode("utf-8", errors="replace"))
    return "\n".join(lines), bad


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
