"""Turn reasoning-trace exports into the pipeline's records, reading each file in its own format.

    python -m thinkcount ingest OUT.jsonl[.gz] FILE... [--field NAME=PATH ...] [--records PATH]

Formats, detected per file from its first record:
  canonical     the pipeline's own records (instruction, input, content)
  openai        an OpenAI chat.completion response, bare or inside a request record (`response`): the prompt from
                `question` or `prompt` or the request's last user message, the trace from `reasoning_content`
                (DeepSeek's API, vLLM's reasoning parsers), `reasoning`, or <think> in `content`
  samples       several samples per record as lists (`thinking: [...]`, `output: [...]`): one record each
  field map     any other layout: --field instruction=question --field thinking=choices.0.message.reasoning ...
                (dotted paths, list indices; a list-valued path gives one record per element)
A file holding one JSON document with the records under a key (`results`, `tasks`) is read from there (--records
PATH names it; a document with one list of objects is found without it).

Each record keeps its provenance: source file, model, prompt_id (a hash of the prompt with whitespace collapsed,
equal across models and samples), sample, truncated (finish_reason length), token counts when known. Its content
is R1-style (thinking, </think>, answer), so the counts stage applies unchanged. Every skipped record is counted
by reason with its file and line."""
import argparse
import re
from pathlib import Path

from thinkcount import UserError
from thinkcount.core.jsonl import Problems, read_json_values, write_jsonl
from thinkcount.data.counting import THINK_CLOSE, THINK_OPEN, prompt_id, prompt_text

FIELDS = ("instruction", "input", "thinking", "answer", "content", "model", "finish_reason", "reasoning_tokens",
          "completion_tokens")
# A chat template's user turn before the think block: DeepSeek's full-width bars, or ChatML.
TEMPLATE_USER = re.compile(r"<｜User｜>(.*?)<｜Assistant｜>|<\|im_start\|>user\n(.*?)<\|im_end\|>", re.DOTALL)


def get_path(value, path):
    """The value at a dotted path with list indices (choices.0.message.reasoning), or None."""
    for part in path.split(".") if path else []:
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def detect(record):
    """The format of a file, from its first record."""
    if isinstance(record, dict) and "instruction" in record and "content" in record:
        return "canonical"
    if isinstance(record, dict) and (isinstance(record.get("response"), dict) or "choices" in record):
        return "openai"
    if isinstance(record, dict) and isinstance(record.get("thinking"), list):
        return "samples"
    return None


def last_user_message(messages):
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] \
        if isinstance(messages, list) else []
    content = users[-1].get("content") if users else None
    if isinstance(content, list):
        content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content


def openai_fields(record):
    """The fields of an OpenAI chat completion, bare or inside a request record."""
    response = record.get("response") if isinstance(record.get("response"), dict) else record
    choice = get_path(response, "choices.0") or {}
    message = choice.get("message") or {}
    request = record.get("request") if isinstance(record.get("request"), dict) else record
    usage = response.get("usage") or {}
    return [{"instruction": record.get("question") or record.get("prompt") or last_user_message(request.get(
                "messages")),
             "thinking": message.get("reasoning_content") or message.get("reasoning"),
             "content": message.get("content"), "model": response.get("model") or record.get("model"),
             "finish_reason": choice.get("finish_reason"), "completion_tokens": usage.get("completion_tokens"),
             "reasoning_tokens": get_path(usage, "completion_tokens_details.reasoning_tokens")
             or usage.get("reasoning_tokens")}]


def sample_fields(record):
    """One set of fields per sample of a record that lists them (thinking: [...], output: [...])."""
    outputs = record.get("output") if isinstance(record.get("output"), list) else []
    return [{"instruction": record.get("prompt") or record.get("question"), "thinking": thinking,
             "answer": outputs[i] if i < len(outputs) else None, "model": record.get("llm") or record.get("model")}
            for i, thinking in enumerate(record["thinking"])]


def mapped_fields(record, field_map):
    """Fields by the user's map; a path whose value is a list gives one record per element."""
    values = {name: get_path(record, path) for name, path in field_map.items()}
    width = max((len(v) for v in values.values() if isinstance(v, list)), default=None)
    if width is None:
        return [values]
    return [{k: (v[i] if isinstance(v, list) and i < len(v) else None if isinstance(v, list) else v)
             for k, v in values.items()} for i in range(width)]


def split_content(content):
    """(template prompt, thinking, answer) of a content string that may hold a think block, or None when it
    has no </think>. Text before <think> (a chat template) is dropped, keeping its user turn as the prompt."""
    if not isinstance(content, str) or THINK_CLOSE not in content:
        return None
    head, _, answer = content.partition(THINK_CLOSE)
    template, has_open, thinking = head.rpartition(THINK_OPEN)
    if not has_open:
        template, thinking = "", head
    user = TEMPLATE_USER.search(template)
    return (next(g for g in user.groups() if g is not None).strip() if user else None), thinking, answer


def to_record(fields):
    """(record, None) in the pipeline's format with provenance, or (None, the reason it is skipped)."""
    thinking, answer, instruction = fields.get("thinking"), fields.get("answer"), fields.get("instruction")
    # A trace of whitespace alone is kept: the model chose not to think (counts 1). An absent or empty one is none.
    if not (isinstance(thinking, str) and thinking):
        split = split_content(fields.get("content"))
        if split is None:
            return None, "no_trace"
        template_prompt, thinking, answer = split
        instruction = instruction or template_prompt
    elif answer is None:
        answer = fields.get("content")
    if not (isinstance(instruction, str) and instruction.strip()):
        return None, "no_prompt"
    input_text = fields.get("input") if isinstance(fields.get("input"), str) else ""
    answer = answer.strip() if isinstance(answer, str) else ""
    record = {"instruction": instruction, "input": input_text,
              "content": f"{thinking.strip()}\n{THINK_CLOSE}\n\n{answer}",
              "model": fields.get("model") if isinstance(fields.get("model"), str) else None,
              "prompt_id": prompt_id(prompt_text(instruction, input_text)),
              "truncated": fields.get("finish_reason") == "length"}
    for key in ("completion_tokens", "reasoning_tokens"):
        if isinstance(fields.get(key), int):
            record[key] = fields[key]
    return record, None


def file_records(path, problems, field_map=None, records_path=None):
    """(line, value) of each record of a file: its JSON values, or the list at records_path inside its one JSON
    document. Without records_path or a field map, a document in no known format that holds exactly one list
    of objects (`results`, `tasks`) is read from that list."""
    values = list(read_json_values(path, problems))
    document = values[0][1] if len(values) == 1 and isinstance(values[0][1], dict) else None
    if records_path is None and document is not None and not field_map and not detect(document):
        lists = [k for k, v in document.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        records_path = lists[0] if len(lists) == 1 else None
    if records_path is None:
        return values
    records = get_path(document, records_path)
    if not isinstance(records, list):
        raise UserError(f"{path}: --records {records_path} is not a list inside one JSON document.")
    return [(values[0][0], r) for r in records]


def ingest_file(path, field_map=None, records_path=None, name=None):
    """(records, problems, format) of one file; name (default: the file's) keys its records and is their source."""
    problems = Problems()
    values = file_records(path, problems, field_map, records_path)
    kind = "field map" if field_map else detect(values[0][1]) if values else None
    if kind is None and values:
        raise UserError(f"{path}: its records are in no known format (canonical, openai, samples); give "
                        "--field NAME=PATH for each field (instruction, thinking or content, ...).")
    extract = {"openai": openai_fields, "samples": sample_fields, "canonical": lambda r: [r],
               "field map": lambda r: mapped_fields(r, field_map)}.get(kind)
    records, index = [], 0
    for line_no, value in values:
        if not isinstance(value, dict):
            problems.add("not_a_json_object", line_no)
            continue
        for sample, fields in enumerate(extract(value)):
            record, reason = to_record(fields)
            if reason:
                problems.add(reason, line_no)
                continue
            records.append({"worker_id": name or Path(path).name, "sample_id": index, **record,
                            "source": name or Path(path).name, "sample": sample})
            index += 1
    return records, problems, kind


def parse_field_map(items):
    field_map = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or name not in FIELDS or not path:
            raise UserError(f"--field {item}: give NAME=PATH with NAME one of {', '.join(FIELDS)}.")
        field_map[name] = path
    if field_map and not ({"instruction"} <= set(field_map) and {"thinking", "content"} & set(field_map)):
        raise UserError("a field map needs instruction and one of thinking or content.")
    return field_map or None


def run(args):
    field_map = parse_field_map(args.field)
    out, total = [], 0
    for path in args.files:
        records, problems, kind = ingest_file(path, field_map, args.records)
        total += problems.total
        print(f"{path}: {kind}, {len(records)} records" + (f"; skipped {problems.total}: {problems.summary()}"
                                                            if problems.total else ""))
        out += records
    if not out:
        raise UserError("no records with a trace in any file.")
    write_jsonl(args.output, out)
    print(f"ingest: {len(out)} records -> {args.output} ({total} skipped)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount ingest", description=__doc__.split("\n")[0])
    parser.add_argument("output", help="the records, JSON Lines (.jsonl or .jsonl.gz)")
    parser.add_argument("files", nargs="+", help="trace files: .jsonl, .json, gzipped or not")
    parser.add_argument("--field", action="append", help="NAME=PATH: where a field is, as a dotted path")
    parser.add_argument("--records", help="the dotted path of the record list inside a file's one JSON document")
    run(parser.parse_args(argv))
