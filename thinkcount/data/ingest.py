"""Turn reasoning-trace exports into the pipeline's records, reading each file in its own format.

    python -m thinkcount ingest OUT.jsonl[.gz] FILE... [--field NAME=PATH ...] [--records PATH]

Formats, detected per file from its first record:
  canonical     the pipeline's own records (instruction, input, content)
  openai        an OpenAI chat.completion response, bare or inside a request record (`response`): the prompt from
                `question` or `prompt` or the request's last user message, the trace from `reasoning_content`
                (DeepSeek's API, vLLM's reasoning parsers), `reasoning`, or <think> in `content`
  samples       several samples per record as lists (`thinking: [...]`, `output: [...]`): one record each
  thoughts      one record per question with `problem`, `thought` and `response` (XuZhao0/tts-knowledge): the
                prompt is that repository's instruction, a newline, then `problem`; the model is the file name's
                first part, with the reasoning effort when the name has one (`gpt-oss-20b_simpleqa_low_effort`)
  field map     any other layout: --field instruction=question --field thinking=choices.0.message.reasoning ...
                (dotted paths, list indices; a list-valued path gives one record per element)
A file holding one JSON document with the records under a key (`results`, `tasks`) is read from there (--records
PATH names it; a document with one list of objects is found without it).

Each record keeps its provenance: source file, model, prompt_id (a hash of the prompt with whitespace collapsed,
equal across models and samples), sample, truncated, token counts when known. Its content is R1-style (thinking,
</think>, answer), so the counts stage applies unchanged. A think block that opens and never closes is a trace
cut off at the token limit: it is kept, marked truncated (as is a finish_reason of `length`) and written without
</think>, so its keyword count is a lower bound. Every skipped record is counted by reason with its file and line."""
import argparse
import re
from pathlib import Path

from thinkcount import UserError
from thinkcount.core.jsonl import Problems, read_json_values, write_jsonl
from thinkcount.data.counting import THINK_CLOSE, THINK_OPEN, prompt_id, prompt_text

FIELDS = ("instruction", "input", "thinking", "answer", "content", "model", "finish_reason", "reasoning_tokens",
          "completion_tokens")
# What every script of XuZhao0/tts-knowledge sent before the question (shared/real_traces/README.md).
THOUGHTS_INSTRUCTION = ("Give me the answer to the following question only when you are sure of it. Otherwise, say "
                        "'I don't know'. Put your answer on its own line after 'Answer:'.")
# End-of-sequence tokens that some exports leave at the end of the text.
END_TOKENS = re.compile(r"(<｜end▁of▁sentence｜>|<\|im_end\|>|<\|endoftext\|>)\s*$")
EFFORT = re.compile(r"_(low|medium|high)_effort$")
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
    if isinstance(record, dict) and isinstance(record.get("problem"), str) and "thought" in record:
        return "thoughts"
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


def thoughts_model(path):
    """The model of a tts-knowledge file, from its name: `Qwen3-8B_frames_exd0` -> Qwen3-8B, and
    `gpt-oss-20b_simpleqa_low_effort` -> `gpt-oss-20b (low effort)` (another setting of the same model)."""
    stem = Path(path).name.split(".")[0]
    effort = EFFORT.search(stem)
    return stem.split("_")[0] + (f" ({effort.group(1)} effort)" if effort else "")


def thoughts_fields(record, model):
    """The fields of a tts-knowledge record: the instruction its scripts sent, then the question."""
    problem = record.get("problem")
    return [{"instruction": f"{THOUGHTS_INSTRUCTION}\n{problem}" if isinstance(problem, str) and problem.strip()
             else None, "thinking": record.get("thought"),
             "answer": record.get("response"), "model": model,
             "reasoning_tokens": record.get("thinking_tokens") or record.get("reasoning_tokens"),
             "completion_tokens": record.get("completion_tokens")}]


def mapped_fields(record, field_map):
    """Fields by the user's map; a path whose value is a list gives one record per element."""
    values = {name: get_path(record, path) for name, path in field_map.items()}
    width = max((len(v) for v in values.values() if isinstance(v, list)), default=None)
    if width is None:
        return [values]
    return [{k: (v[i] if isinstance(v, list) and i < len(v) else None if isinstance(v, list) else v)
             for k, v in values.items()} for i in range(width)]


def split_content(content):
    """(template prompt, thinking, answer, truncated) of a content string that holds a think block, or None when
    it has neither </think> nor <think>. A <think> never closed is a truncated trace: all after it is thinking.
    Text before <think> (a chat template) is dropped, keeping its user turn as the prompt."""
    if not isinstance(content, str) or (THINK_CLOSE not in content and THINK_OPEN not in content):
        return None
    truncated = THINK_CLOSE not in content
    head, _, answer = content.partition(THINK_CLOSE)
    template, has_open, thinking = head.rpartition(THINK_OPEN)
    if not has_open:
        template, thinking = "", head
    user = TEMPLATE_USER.search(template)
    return (next(g for g in user.groups() if g is not None).strip() if user else None), thinking, answer, truncated


def unwrap_thinking(thinking):
    """(thinking, truncated) of a trace field that may carry its own think tags and end token: the text inside
    them; a <think> with no </think> is a trace cut off at the token limit."""
    thinking = END_TOKENS.sub("", thinking)
    if THINK_OPEN not in thinking and THINK_CLOSE not in thinking:
        return thinking, False
    _, thinking, _, truncated = split_content(thinking)
    return thinking, truncated


def to_record(fields):
    """(record, None) in the pipeline's format with provenance, or (None, the reason it is skipped)."""
    thinking, answer, instruction = fields.get("thinking"), fields.get("answer"), fields.get("instruction")
    # A trace of whitespace alone is kept: the model chose not to think (counts 1). An absent or empty one is none.
    if isinstance(thinking, str) and thinking:
        thinking, truncated = unwrap_thinking(thinking)
        answer = fields.get("content") if answer is None else answer
    else:
        split = split_content(fields.get("content"))
        if split is None:
            return None, "no_trace"
        template_prompt, thinking, answer, truncated = split
        instruction = instruction or template_prompt
    if not (isinstance(instruction, str) and instruction.strip()):
        return None, "no_prompt"
    input_text = fields.get("input") if isinstance(fields.get("input"), str) else ""
    answer = END_TOKENS.sub("", answer).strip() if isinstance(answer, str) else ""
    # A cut-off trace keeps no </think>: its keywords all count, and no think block reads as closed.
    content = f"{THINK_OPEN}\n{thinking.strip()}" if truncated else f"{thinking.strip()}\n{THINK_CLOSE}\n\n{answer}"
    record = {"instruction": instruction, "input": input_text, "content": content,
              "model": fields.get("model") if isinstance(fields.get("model"), str) else None,
              "prompt_id": prompt_id(prompt_text(instruction, input_text)),
              "truncated": truncated or fields.get("finish_reason") == "length"}
    for key in ("completion_tokens", "reasoning_tokens"):
        if isinstance(fields.get(key), int) and not isinstance(fields.get(key), bool):
            record[key] = fields[key]
    record.update(served_fields(fields))
    return record, None


def served_fields(fields):
    """What a proxy's traffic-log record adds: when the request finished (`time`, unix seconds: the split by
    time) and what the served predictor said of it (`served_score`, `served_expected`: the served model's row in a
    comparison)."""
    out = {}
    if isinstance(fields.get("finish"), (int, float)) and not isinstance(fields.get("finish"), bool):
        out["time"] = float(fields["finish"])
    prediction = fields.get("prediction")
    if isinstance(prediction, dict) and all(isinstance(prediction.get(k), (int, float))
                                            for k in ("score", "expected_counts")):
        out["served_score"], out["served_expected"] = float(prediction["score"]), float(prediction["expected_counts"])
    return out


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
        raise UserError(f"{path}: its records are in no known format (canonical, openai, samples, thoughts); give "
                        "--field NAME=PATH for each field (instruction, thinking or content, ...).")
    extract = {"openai": openai_fields, "samples": sample_fields, "canonical": lambda r: [r],
               "thoughts": lambda r: thoughts_fields(r, thoughts_model(path)),
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
