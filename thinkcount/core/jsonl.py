"""JSON reading and writing that accounts for every bad record instead of crashing or dropping it.

Every reader splits records at any line break (\\n, \\r\\n or a lone \\r), reads UTF-8 strictly (a byte-order
mark is allowed) and refuses text holding a lone surrogate, which no UTF-8 file can encode; every writer
writes a temporary file beside its target and renames it, so a reader never sees half a file."""
import bisect
import contextlib
import gzip
import io
import json
import os
import re
from array import array
from pathlib import Path

from thinkcount import UserError

MAX_LINES_SHOWN = 5
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A byte that is not UTF-8, as the surrogateescape error handler decodes it (strict UTF-8 never yields these).
ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
SURROGATE = re.compile("[\ud800-\udfff]")
WHITESPACE = re.compile(r"[ \t\r\n]*")
# Where a record may start after a broken one: { or [ at the start of a line (indented inside an array).
RECORD_START = re.compile(r"(?<=[\r\n])[{\[]")
ELEMENT_START = re.compile(r"(?<=[\r\n])[ \t]*\{")


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


def has_lone_surrogate(value):
    """Whether any string in a parsed JSON value (keys included) holds a lone surrogate such as "\\ud800"."""
    if isinstance(value, str):
        return SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


READ_PROBLEM = {"invalid_utf8": "not valid UTF-8", "lone_surrogate": "holds a lone surrogate (\\ud800-\\udfff)",
                "malformed_json": "not a JSON object"}


def case_variant(obj, fields):
    """The first key that differs from one of fields only by case (`Input` for `input`), or None.

    One rule for every reader: such a record is refused and counted, never read under a guessed key."""
    lower = {f.lower(): f for f in fields}
    return next((k for k in obj if isinstance(k, str) and k not in fields and k.lower() in lower), None)


def text_lines(path):
    """Yield (line_no, line) of a text file, gzipped when it ends in .gz, read as a stream: any line break
    ends a line; a byte that is not UTF-8 comes back as a surrogate escape for line_problem to find."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory; name a .jsonl or .jsonl.gz file.")
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape",
                                                         newline=None) as lines:
            yield from enumerate(lines, start=1)
    except (OSError, EOFError) as e:
        raise UserError(f"{path}: not a readable {'gzip ' if path.suffix == '.gz' else ''}file ({e}).") from None


def parse_line(line):
    """(reason, object): the JSON object on one line, or why it is refused."""
    if ESCAPED_BYTE.search(line):
        return "invalid_utf8", None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return "malformed_json", None
    if not isinstance(obj, dict):
        return "malformed_json", None
    return ("lone_surrogate", None) if has_lone_surrogate(obj) else (None, obj)


def read_jsonl(path, problems=None):
    """Yield (line_no, object) for each line that is a JSON object. A bad line is counted in problems,
    or without problems stops the read with one sentence naming its line."""
    for line_no, line in text_lines(path):
        if not line.strip():
            continue
        reason, obj = parse_line(line)
        if reason is None:
            yield line_no, obj
        elif problems is None:
            raise UserError(f"{path}, line {line_no}: {READ_PROBLEM[reason]}.")
        else:
            problems.add(reason, line_no)


class LineIndex:
    """Line numbers of positions in a text whose lines end at any line break (8 bytes a line)."""

    def __init__(self, text):
        self.starts = array("q", [0])
        self.starts.extend(m.end() for m in LINE_BREAK.finditer(text))
        self.length = len(text)

    def line(self, pos):
        return bisect.bisect_right(self.starts, pos)

    def next_line_start(self, pos):
        i = self.line(pos)
        return self.starts[i] if i < len(self.starts) else self.length


def read_json_values(path, problems):
    """Yield (line_no, value) for each JSON value of a user's file; count each bad record once.

    Reads JSON Lines, values pretty-printed across lines, or a file whose first value is an array of
    records, optionally gzipped (.gz). The text is held once (no other copy), so memory stays near the
    input's size plus the records read. A value that does not parse is counted as malformed_json at its
    first line, and reading resumes at the next line that starts a record. A value touching a byte that
    is not UTF-8 is counted as invalid_utf8 and one holding a lone surrogate as lone_surrogate: no
    character is replaced."""
    text = read_bytes(path).decode("utf-8", errors="surrogateescape")
    bad = [m.start() for m in ESCAPED_BYTE.finditer(text)]
    lines, decoder = LineIndex(text), json.JSONDecoder()
    pos = skip_space(text, 1 if text.startswith("\ufeff") else 0)
    in_array = text.startswith("[", pos)
    pos = skip_space(text, pos + 1) if in_array else pos
    while pos < len(text):
        if in_array and text[pos] == "]":
            in_array, pos = False, skip_space(text, pos + 1)
            continue
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            reason = "invalid_utf8" if touches(bad, pos, lines.next_line_start(pos)) else "malformed_json"
            problems.add(reason, lines.line(pos))
            resume = (ELEMENT_START if in_array else RECORD_START).search(text, lines.next_line_start(pos))
            pos = resume.end() - 1 if resume else len(text)
            continue
        reason = "invalid_utf8" if touches(bad, pos, end) else "lone_surrogate" if has_lone_surrogate(value) else None
        if reason:
            problems.add(reason, lines.line(pos))
        else:
            yield lines.line(pos), value
        pos = skip_space(text, end)
        if in_array and text.startswith(",", pos):
            pos = skip_space(text, pos + 1)


def skip_space(text, pos):
    return WHITESPACE.match(text, pos).end()


def touches(sorted_positions, start, end):
    """Whether any of the sorted positions lies in [start, end)."""
    i = bisect.bisect_left(sorted_positions, start)
    return i < len(sorted_positions) and sorted_positions[i] < end


def read_bytes(path):
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory; name a .jsonl, .json or .jsonl.gz file.")
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    try:
        return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise UserError(f"{path}: not a readable gzip file ({e}).") from None


def load_jsonl(path):
    """Read a JSONL file that the pipeline itself wrote: any bad line is an error."""
    return [obj for _, obj in read_jsonl(path)]


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path` (same suffix) for the block to write; renamed onto `path` when the
    block succeeds, removed when it fails: `path` is written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_jsonl(path, rows):
    """One JSON object a line, streamed (rows may be a generator); gzipped when path ends in .gz."""
    with atomic_path(path) as tmp:
        opener = gzip.open if Path(path).suffix == ".gz" else open
        with opener(tmp, "wt", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path):
    """A JSON file the project wrote (a config, a manifest); a missing or broken one is one sentence."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e}).") from None
