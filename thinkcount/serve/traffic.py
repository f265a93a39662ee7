"""The proxy's traffic log: one record per completed request, written off the request path.

Each record is a canonical pipeline record (instruction, input, R1-style content, model, finish_reason, token
counts), so `ingest` and `data.source: served` read it by the same rules as the public traces, plus what was
served: arrival and finish times, time to first token, status, the prediction (score, expected counts,
priority, route), the served model's name, think characters, keyword counts and the abnormal-answer flag.

The answer is read on the side as it passes (AnswerReader: it sees the bytes the client gets and changes none).
A finished request hands an immutable Exchange to a bounded queue and never waits: past queue_size records or
queue_chars characters of text waiting, a record is dropped and counted. One writer thread turns exchanges into
lines and writes them in batches, each batch one write() and an fsync: a killed proxy loses at most the batch in
hand, and a restart cuts any partial last line before it appends. Files rotate by size or age; with keep_prompts
off a record keeps a hash of its prompt and no text (the log then serves drift, not retraining)."""
import hashlib
import json
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from thinkcount.data.counting import count_keywords, keyword_pattern, prompt_id, think_text
from thinkcount.data.ingest import to_record

# What one request's reader holds at most: with --max-connections 1000, about 1.3 GB in the worst case.
MAX_TEXT_CHARS = 256_000     # reasoning and answer text kept per request (about 64k tokens); more is cut and marked
MAX_EVENT_BYTES = 1 << 20    # one server-sent event or a whole JSON answer read at most; past it, not parsed
PREFIX = "traffic-"


@dataclass(frozen=True)
class Exchange:
    """What the proxy saw of one request, handed to the writer thread."""
    request_id: str
    arrival: float               # unix seconds
    finish: float
    first_token: float | None    # unix seconds of the first text the engine sent, if any
    prompt: str
    served_model: str | None     # the request's `model`
    model: str | None            # the name the predictor knows it by (the served name unless mapped)
    prediction: dict | None      # score, expected_counts, priority, upstream; None when unscored
    status: int
    error: str | None            # the upstream failure kind, if the answer did not complete
    reasoning: str
    content: str
    finish_reason: str | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    text_capped: bool


class AnswerReader:
    """Reads an OpenAI-style answer from its raw bytes: a JSON body, or server-sent events of deltas. It keeps
    the reasoning (`reasoning_content` or `reasoning`), the content or completion text, the finish reason, token
    usage and when the first text came, all bounded in memory."""

    def __init__(self, event_stream, readable=True):
        self.event_stream, self.readable = event_stream, readable
        self.pending, self.reasoning, self.content = bytearray(), [], []
        self.chars, self.text_capped = 0, False
        self.finish_reason = self.completion_tokens = self.reasoning_tokens = self.first_token = None

    def feed(self, chunk):
        if not self.readable:
            return
        self.pending += chunk
        if not self.event_stream:
            self.readable = len(self.pending) <= MAX_EVENT_BYTES
            return
        *lines, rest = bytes(self.pending).split(b"\n")
        self.pending = bytearray(rest)
        for line in lines:
            if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
                self.take(parsed(line[5:]), delta=True)
        if len(self.pending) > MAX_EVENT_BYTES:
            self.readable = False

    def finish(self):
        """Parse what a JSON answer left; returns self."""
        if self.readable and not self.event_stream and self.pending:
            self.take(parsed(bytes(self.pending)), delta=False)
        self.pending = bytearray()
        return self

    def take(self, event, delta):
        if not isinstance(event, dict):
            return
        choice = (event.get("choices") or [{}])[0] if isinstance(event.get("choices"), list) else {}
        choice = choice if isinstance(choice, dict) else {}
        message = choice.get("delta" if delta else "message") or {}
        message = message if isinstance(message, dict) else {}
        self.add(self.reasoning, message.get("reasoning_content") or message.get("reasoning"))
        self.add(self.content, message.get("content") if "content" in message else choice.get("text"))
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        usage = event.get("usage") if isinstance(event.get("usage"), dict) else {}
        details = usage.get("completion_tokens_details") if isinstance(usage.get("completion_tokens_details"),
                                                                      dict) else {}
        self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)
        self.reasoning_tokens = details.get("reasoning_tokens") or usage.get("reasoning_tokens") \
            or self.reasoning_tokens

    def add(self, parts, text):
        if not isinstance(text, str) or not text:
            return
        if self.first_token is None:
            self.first_token = time.time()
        room = MAX_TEXT_CHARS - self.chars
        self.text_capped |= len(text) > room
        parts.append(text[:max(room, 0)])
        self.chars += min(len(text), max(room, 0))


def parsed(data):
    try:
        return json.loads(data)
    except ValueError:
        return None


def log_record(exchange, pattern, keep_prompts, abnormal_ratio):
    """The log line's object for one exchange: a canonical record by ingest's rules, plus what was served."""
    fields = {"instruction": exchange.prompt, "thinking": exchange.reasoning or None, "content": exchange.content,
              "model": exchange.model, "finish_reason": exchange.finish_reason,
              "completion_tokens": exchange.completion_tokens, "reasoning_tokens": exchange.reasoning_tokens}
    record, _ = to_record(fields)
    content = record["content"] if record else ""
    counts = count_keywords(content, pattern) if record else None
    prediction = exchange.prediction
    abnormal = None
    if counts is not None and prediction and abnormal_ratio:
        abnormal = counts > abnormal_ratio * max(prediction["expected_counts"], 1.0)
    return {"id": exchange.request_id, "arrival": round(exchange.arrival, 6), "finish": round(exchange.finish, 6),
            "ttft_s": round(exchange.first_token - exchange.arrival, 6) if exchange.first_token else None,
            "status": exchange.status, "error": exchange.error,
            "instruction": exchange.prompt if keep_prompts else None, "input": "",
            "content": content if keep_prompts else None, "prompt_hash": prompt_id(exchange.prompt),
            "model": exchange.model, "served_model": exchange.served_model, "prediction": prediction,
            "finish_reason": exchange.finish_reason, "truncated": record["truncated"] if record else None,
            "completion_tokens": exchange.completion_tokens, "reasoning_tokens": exchange.reasoning_tokens,
            "think_chars": len(think_text(content)) if record else None, "counts": counts,
            "text_capped": exchange.text_capped, "abnormal": abnormal}


@dataclass(frozen=True)
class LogSettings:
    folder: str                    # where the log files go (created)
    keywords: tuple                # the counts keywords (params.yaml's counts.keywords)
    case_sensitive: bool = True
    keep_prompts: bool = True      # False: a hash of each prompt and no text
    max_bytes: int = 64 << 20      # a file is rotated past this size ...
    rotate_seconds: float = 3600   # ... or this age
    batch: int = 64                # records written and fsynced together at most
    flush_seconds: float = 0.2     # longest a record waits in the writer for its batch to fill
    queue_size: int = 10_000       # records waiting for the writer; more are dropped and counted ...
    queue_chars: int = 64_000_000  # ... as are records past this many characters of text waiting


class TrafficLog:
    """A writer thread behind a bounded queue. submit() never blocks; on_record(record) is called in the writer
    thread for each record written (the service's drift and abnormal-answer metrics)."""

    def __init__(self, settings, abnormal_ratio=None, on_record=lambda record: None, on_drop=lambda: None):
        self.settings, self.abnormal_ratio = settings, abnormal_ratio
        self.on_record, self.on_drop = on_record, on_drop
        self.pattern = keyword_pattern(settings.keywords, settings.case_sensitive)
        self.queue = queue.Queue(settings.queue_size)
        self.folder = Path(settings.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file, self.opened = None, 0.0
        self.thread = threading.Thread(target=self.run, name="traffic-log", daemon=True)
        self.stopping = threading.Event()
        self.waiting_chars, self.lock = 0, threading.Lock()

    def start(self):
        self.open(resume=True)
        self.thread.start()

    def submit(self, exchange):
        chars = text_size(exchange)
        with self.lock:
            room = self.waiting_chars + chars <= self.settings.queue_chars
            if room:
                self.waiting_chars += chars
        try:
            if not room:
                raise queue.Full
            self.queue.put_nowait(exchange)
            return True
        except queue.Full:
            if room:
                with self.lock:
                    self.waiting_chars -= chars
            self.on_drop()
            return False

    def stop(self, timeout=10):
        """Write what is queued, then close."""
        self.stopping.set()
        self.thread.join(timeout)
        if self.file is not None:
            self.file.close()

    def run(self):
        while not (self.stopping.is_set() and self.queue.empty()):
            batch = self.next_batch()
            if batch:
                self.write([log_record(e, self.pattern, self.settings.keep_prompts, self.abnormal_ratio)
                            for e in batch])
                with self.lock:
                    self.waiting_chars -= sum(map(text_size, batch))

    def next_batch(self):
        try:
            batch = [self.queue.get(timeout=self.settings.flush_seconds)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.settings.flush_seconds
        while len(batch) < self.settings.batch:
            try:
                batch.append(self.queue.get(timeout=max(deadline - time.monotonic(), 0)))
            except queue.Empty:
                break
        return batch

    def write(self, records):
        if self.file.tell() >= self.settings.max_bytes or time.time() - self.opened >= self.settings.rotate_seconds:
            self.file.close()
            self.open(resume=False)
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        self.file.write(data)
        self.file.flush()
        os.fsync(self.file.fileno())
        for record in records:
            self.on_record(record)

    def open(self, resume):
        """Append to the newest file when a restart finds it young and small enough (its partial last line cut),
        else start a new one."""
        newest = max(self.folder.glob(f"{PREFIX}*.jsonl"), default=None)
        if resume and newest is not None and newest.stat().st_size < self.settings.max_bytes \
                and time.time() - newest.stat().st_mtime < self.settings.rotate_seconds:
            cut_partial_line(newest)
            path = newest
        else:
            path = self.new_path()
        self.file = open(path, "ab")
        self.opened = opened_at(path)

    def new_path(self):
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        path, n = self.folder / f"{PREFIX}{stamp}.jsonl", 1
        while path.exists():  # two rotations within one second
            path, n = self.folder / f"{PREFIX}{stamp}-{n}.jsonl", n + 1
        return path


def opened_at(path):
    """When a log file was started, from its name (traffic-20261206T191200[-n].jsonl)."""
    stamp = path.name.removeprefix(PREFIX).split(".")[0].split("-")[0]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc).timestamp()


def cut_partial_line(path):
    """Truncate a log file after its last complete line (a write cut short by a kill)."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        block = min(size, 1 << 20)
        while True:
            f.seek(size - block)
            tail = f.read(block)
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            if cut >= 0 or block == size:
                f.truncate(size - block + cut + 1)
                return
            block = min(size, block * 2)


def text_size(exchange):
    return len(exchange.prompt) + len(exchange.reasoning) + len(exchange.content)


def request_id(arrival, prompt):
    """A request's id in the log: its arrival time and a hash of its prompt and the process."""
    digest = hashlib.sha256(f"{arrival}:{os.getpid()}:{prompt}".encode()).hexdigest()[:12]
    return f"{int(arrival * 1e6):x}-{digest}"
