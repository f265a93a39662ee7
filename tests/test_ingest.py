"""Ingest of real trace exports, one small fixture per format, then the public files against their manifest."""
import csv
import gzip
import hashlib
import json

import pytest

from conftest import ROOT, verb
from thinkcount.data.corpus import validate_records
from thinkcount.data.counting import prompt_id
from thinkcount.data.ingest import ingest_file
from thinkcount.data.records import compute_counts

main = verb("ingest")

SHARED = ROOT.parent / "shared" / "real_traces"


THOUGHTS = ("Give me the answer to the following question only when you are sure of it. Otherwise, say 'I don't "
            "know'. Put your answer on its own line after 'Answer:'.")


def chat(message, finish="stop", usage=None, model="m-1"):
    return {"object": "chat.completion", "model": model, "usage": usage or {},
            "choices": [{"finish_reason": finish, "message": {"role": "assistant", **message}}]}


def lines(*records):
    return "".join(json.dumps(r) + "\n" for r in records)


# (name, file name, text, field map, records path, expected (instruction, thinking, answer, model, sample,
#  truncated) per record, problems by reason -> lines)
FORMATS = [
    ("canonical records", "c.jsonl",
     lines({"worker_id": 0, "sample_id": 0, "instruction": "Explain rain.", "input": "", "content":
            "So. Wait.\n</think>\n\nIt falls."}),
     None, None, [("Explain rain.", "So. Wait.", "It falls.", None, 0, False)], {}),
    ("bare response, reasoning_content (DeepSeek API, vLLM parsers)", "r.jsonl",
     lines({**chat({"content": "4", "reasoning_content": "Okay, 2+2. Wait, 4."}), "prompt": "What is 2+2?"}),
     None, None, [("What is 2+2?", "Okay, 2+2. Wait, 4.", "4", "m-1", 0, False)], {}),
    ("request record: last user message, <think> in content, cut at the token limit", "q.jsonl",
     lines({"request": {"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"},
                                     {"role": "user", "content": "Why is the sky blue?"}]},
            "response": chat({"content": "<think>\nHmm. Rayleigh.\n</think>\n\nScattering."}, finish="length",
                             usage={"completion_tokens": 40,
                                    "completion_tokens_details": {"reasoning_tokens": 31}})}),
     None, None, [("Why is the sky blue?", "Hmm. Rayleigh.", "Scattering.", "m-1", 0, True)], {}),
    ("several samples as lists, one without a trace", "s.json",
     json.dumps({"results": [{"prompt_id": "p", "prompt": "Trolley?", "llm": "qwq", "thinking": ["Okay.", "", "So."],
                              "output": ["A", "B", "C"]}]}),
     None, None, [("Trolley?", "Okay.", "A", "qwq", 0, False), ("Trolley?", "So.", "C", "qwq", 2, False)],
     {"no_trace": [1]}),
    ("a chat template before <think> gives the prompt", "t.jsonl",
     lines({"choices": [{"finish_reason": "stop", "message": {
         "content": "<｜User｜>Name a prime.<｜Assistant｜><think>\nLet me see. 7.\n</think>\n\n7"}}]}),
     None, None, [("Name a prime.", "Let me see. 7.", "7", None, 0, False)], {}),
    ("a list-valued path whose elements are not text", "f.jsonl",
     lines({"question": "Pick one.", "runs": [{"r": "First. Then."}, {"r": "So."}], "ans": ["x", "y"], "llm": "g"}),
     {"instruction": "question", "thinking": "runs", "answer": "ans", "model": "llm"}, None, [],
     {"no_trace": [1, 1]}),  # its elements are objects, not text: each is counted
    ("a field map with list indices", "g.jsonl",
     lines({"q": "Sum 1 and 2.", "out": {"choices": [{"message": {"reasoning": "Compute: 3.", "content": "3"}}]}}),
     {"instruction": "q", "thinking": "out.choices.0.message.reasoning", "answer": "out.choices.0.message.content"},
     None, [("Sum 1 and 2.", "Compute: 3.", "3", None, 0, False)], {}),
    ("records under a named key", "k.json",
     json.dumps({"meta": [{"a": 1}], "tasks": [{"prompt": "Go?", "thinking": ["Now."], "output": ["Yes"]}]}),
     None, "tasks", [("Go?", "Now.", "Yes", None, 0, False)], {}),
    ("a think block that opens and never closes is a truncated trace, kept", "u.jsonl",
     lines({**chat({"content": "<think>\nHmm. Let me count. Wait, again"}, finish="length"), "prompt": "Count."},
           {**chat({"content": "", "reasoning_content": "<think>Okay. Alternatively"}), "prompt": "Guess."}),
     None, None, [("Count.", "<think>\nHmm. Let me count. Wait, again", "", "m-1", 0, True),
                  ("Guess.", "<think>\nOkay. Alternatively", "", "m-1", 0, True)], {}),
    ("one question per record with its thought (tts-knowledge); tags and end tokens stripped",
     "Qwen3-8B_frames_exd0.jsonl",
     lines({"id": 1, "problem": "Who wrote Dune?", "thought": "<think>\nOkay. Herbert.\n</think>",
            "response": "Answer: Frank Herbert<|im_end|>", "thinking_tokens": 9, "response_tokens": 5},
           {"id": 2, "problem": "", "thought": "So.", "response": "x"}),
     None, None, [(f"{THOUGHTS}\nWho wrote Dune?", "Okay. Herbert.", "Answer: Frank Herbert", "Qwen3-8B", 0, False)],
     {"no_prompt": [2]}),
    ("a thought that ends in the end token, never closed, is complete", "gpt-oss-20b_simpleqa_low_effort.jsonl",
     lines({"problem": "Capital of Peru?", "thought": "We need. Lima.<｜end▁of▁sentence｜>", "response": "Lima"}),
     None, None, [(f"{THOUGHTS}\nCapital of Peru?", "We need. Lima.", "Lima", "gpt-oss-20b (low effort)", 0, False)],
     {}),
    ("no trace and no prompt are counted", "n.jsonl",
     lines({**chat({"content": "plain answer"}), "prompt": "Hi"}, {**chat({"content": "</think>x"})},
           {**chat({"content": "x", "reasoning": "\n\n"}), "prompt": "Skip?"}),
     None, None, [("Skip?", "", "x", "m-1", 0, False)], {"no_trace": [1], "no_prompt": [2]}),
]


def split(content):
    thinking, _, answer = content.partition("\n</think>\n\n")
    return thinking, answer


@pytest.mark.parametrize("name, filename, text, field_map, records, expected, problems", FORMATS,
                         ids=[f[0] for f in FORMATS])
def test_each_format_becomes_r1_style_records_with_provenance(tmp_path, name, filename, text, field_map, records,
                                                              expected, problems):
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")
    got, found, _ = ingest_file(path, field_map, records)
    assert [(r["instruction"], *split(r["content"]), r["model"], r["sample"], r["truncated"]) for r in got] == expected
    assert {reason: e["lines"] for reason, e in found.by_reason.items()} == problems
    assert all(r["source"] == filename and r["prompt_id"] == prompt_id(r["instruction"]) for r in got)


def test_token_counts_are_kept_when_the_export_has_them(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(FORMATS[2][2])
    [record], _, _ = ingest_file(path)
    assert (record["completion_tokens"], record["reasoning_tokens"]) == (40, 31)


def test_a_list_valued_path_gives_one_record_per_element(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(lines({"question": "Pick one.", "runs": ["First. Then.", "So."], "ans": ["x", "y"]}))
    got, _, _ = ingest_file(path, {"instruction": "question", "thinking": "runs", "answer": "ans"})
    assert [(split(r["content"]), r["sample"]) for r in got] == [(("First. Then.", "x"), 0), (("So.", "y"), 1)]


def test_a_truncated_trace_counts_every_keyword_as_a_lower_bound(tmp_path, counting):
    (tmp_path / "u.jsonl").write_text(lines({**chat({"content": "<think>\nHmm. Wait, no. Wait"}, finish="length"),
                                             "prompt": "Count."}))
    assert main([str(tmp_path / "out.jsonl"), str(tmp_path / "u.jsonl")]) == 0
    records, _, _, _ = validate_records(tmp_path / "out.jsonl")
    counts = compute_counts(records, counting)
    # Hmm, Wait, Wait: 3 keywords plus one; no closed think block, so "Wait"-only counts stay at the floor of 1.
    assert (counts["counts"].tolist(), counts["wait_counts"].tolist(), counts["truncated"].tolist()) == \
        ([4], [1], [True])


def test_prompt_id_is_equal_across_models_samples_and_whitespace():
    assert prompt_id("Why is  the sky\nblue?") == prompt_id(" Why is the sky blue? ") != prompt_id("Why is it?")


def test_ingested_records_flow_through_the_corpus_reader_and_the_counts(tmp_path, counting):
    (tmp_path / "r.jsonl").write_text(FORMATS[1][2] + FORMATS[2][2])
    assert main([str(tmp_path / "out.jsonl.gz"), str(tmp_path / "r.jsonl")]) == 0
    records, problems, _, _ = validate_records(tmp_path / "out.jsonl.gz")
    assert problems.total == 0
    # "Okay, 2+2. Wait, 4." holds Okay and Wait; "Hmm. Rayleigh." holds Hmm: counts are those plus one.
    assert compute_counts(records, counting)["counts"].tolist() == [3, 2]


@pytest.mark.parametrize("args, message", [
    (["--field", "prompt=q"], "--field prompt=q: give NAME=PATH with NAME one of instruction"),
    (["--field", "instruction=q"], "a field map needs instruction and one of thinking or content"),
])
def test_a_bad_field_map_is_one_sentence(tmp_path, capsys, args, message):
    (tmp_path / "a.jsonl").write_text("{}\n")
    assert main([str(tmp_path / "o.jsonl"), str(tmp_path / "a.jsonl"), *args]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "o.jsonl").exists()


def test_an_unknown_layout_asks_for_a_field_map(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text(lines({"foo": 1}))
    assert main([str(tmp_path / "o.jsonl"), str(tmp_path / "a.jsonl")]) == 1
    assert "no known format" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/real_traces")
def test_every_public_file_gives_its_manifest_s_number_of_traces():
    rows = list(csv.DictReader((SHARED / "MANIFEST.tsv").open(), delimiter="\t"))
    counts = {row["file"]: len(ingest_file(SHARED / row["file"])[0]) for row in rows}
    assert counts == {row["file"]: int(row["traces"]) for row in rows}
    assert sum(counts.values()) == 2869 + 2653 + 2141 + 12168  # speechmap, MisguidedAttention, LRMTokenEconomy, tts
    for row in rows[:3]:  # the files are the raw bytes, gzipped
        raw = gzip.decompress((SHARED / row["file"]).read_bytes())
        assert (len(raw), hashlib.sha256(raw).hexdigest()) == (int(row["bytes"]), row["sha256"])


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/real_traces")
def test_the_real_profile_reads_every_shared_source_and_counts_each_one_s_truncated_traces():
    from thinkcount.data.fetch import read_sources
    from thinkcount.data.real import real_corpus
    listed = {s["file"] for s in read_sources()}
    assert {row["file"] for row in csv.DictReader((SHARED / "MANIFEST.tsv").open(), delimiter="\t")} <= listed
    assert {f"{repo}/LICENSE" for repo in ("xlr8harder__speechmap-data", "cpldcpu__MisguidedAttention",
                                           "cpldcpu__LRMTokenEconomy", "XuZhao0__tts-knowledge")} <= listed
    _, report = real_corpus(str(SHARED))
    sources = report["by_source"]
    assert {name: s["traces"] for name, s in sources.items()} == {
        "xlr8harder/speechmap-data": 2869, "cpldcpu/MisguidedAttention": 2653, "cpldcpu/LRMTokenEconomy": 2141,
        "XuZhao0/tts-knowledge": 12168}
    assert sources["XuZhao0/tts-knowledge"]["prompts"] == 1624
    assert sum(s["truncated"] for s in sources.values()) == report["truncated"]
