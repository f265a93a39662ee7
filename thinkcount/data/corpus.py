"""The embedded default corpus: Alpaca-like prompts with synthetic reasoning traces.

Each prompt gets a hidden expected effort from what it asks (thinkcount/data/prompts.py). The trace's keyword
count is drawn around that effort with heavy-tailed noise, so the prompt carries real but partial signal.
The noise the real data had is reproduced: skipped thinking, degenerate "Wait" loops cut off at the token
limit, long traces with few keywords, and refusals.
"""
import math
import re

import numpy as np

from thinkcount import UserError
from thinkcount.core.jsonl import READ_PROBLEM, Problems, case_variant, read_json_values
from thinkcount.data.counting import THINK_OPEN
from thinkcount.data.prompts import TOPICS, make_prompt

PASSAGE_SENTENCES = [
    "Researchers have studied {t} for decades and still disagree about several details.",
    "Many people first hear about {t} at school, but few understand how it works.",
    "The effects of {t} can be seen in everyday life, from prices to habits.",
    "Critics argue that the benefits of {t} are often overstated.",
    "Supporters point to recent data showing steady progress.",
    "In the last ten years the topic has received a lot of public attention.",
    "Several countries have adopted different policies in response.",
    "The debate continues, and new evidence appears every year.",
    "Experts recommend a careful look at both short and long term consequences.",
    "A recent report described {t} as one of the defining issues of our time.",
]

KEYWORD_SENTENCES = {
    "So": ["So the main point is {c}.", "So {c}, which fits what the user asked."],
    "Let me": ["Let me think about {c}.", "Let me double-check {c}.", "Let me organize this around {c}."],
    "Okay": ["Okay, the user wants {c}.", "Okay, that covers {c}."],
    "Now": ["Now, about {c}.", "Now I should consider {c}."],
    "First": ["First, {c}.", "First, I need to recall {c}."],
    "Then": ["Then {c} follows from that.", "Then there is {c}."],
    "Hmm": ["Hmm, {c} is less obvious than it looks.", "Hmm, what about {c}?"],
    "Alternatively": ["Alternatively, {c} could be the focus.", "Alternatively, start from {c}."],
    "But wait": ["But wait, {c} changes things.", "But wait, did I account for {c}?"],
    "Maybe": ["Maybe {c} deserves a sentence.", "Maybe the answer hinges on {c}."],
    "I think": ["I think {c} is the key idea.", "I think the user cares about {c}."],
    "Therefore": ["Therefore, {c} should come first.", "Therefore the answer includes {c}."],
    "Thus": ["Thus {c} is settled.", "Thus the structure is clear: {c}."],
    "Let's see": ["Let's see, {c} works.", "Let's see what {c} implies."],
    "Alright": ["Alright, {c} is done.", "Alright, moving on to {c}."],
    "Similarly": ["Similarly, {c} applies here."],
    "Looking back": ["Looking back, {c} was handled."],
    "Hold on": ["Hold on, {c} needs care."],
    "Got it": ["Got it, {c}."],
    "That seems right": ["That seems right for {c}."],
    "That's correct": ["That's correct about {c}."],
    "Another approach": ["Another approach would use {c}."],
    "Remember": ["Remember that {c} matters."],
    "Good": ["Good, {c} checks out."],
    "Compute": ["Compute {c} step by step."],
    "Starting": ["Starting with {c}."],
    "Correct": ["Correct, {c} holds."],
    "I don't see any errors": ["I don't see any errors in {c}."],
    "Seems solid": ["Seems solid: {c}."],
}
KEYWORD_WEIGHTS = {
    "So": 12, "Let me": 10, "Okay": 8, "Now": 6, "First": 5, "Then": 5, "Hmm": 5, "Alternatively": 3,
    "But wait": 4, "Maybe": 4, "I think": 5, "Therefore": 3, "Thus": 2, "Let's see": 3, "Alright": 3,
    "Similarly": 1, "Looking back": 1, "Hold on": 1, "Got it": 1, "That seems right": 1, "That's correct": 1,
    "Another approach": 1, "Remember": 1, "Good": 1, "Compute": 1, "Starting": 1, "Correct": 1,
    "I don't see any errors": 1, "Seems solid": 1,
}
WAIT_SENTENCES = ["Wait, {c} might be wrong.", "Wait, I should revisit {c}.", "Wait, what about {c}?"]
FILLER_SENTENCES = [
    "The user asked about {c}, and the answer should stay focused.",
    "It helps to keep the explanation short and concrete.",
    "The key facts about {c} are well known.",
    "An example would make {c} easier to follow.",
    "This part of the answer needs one clear sentence.",
    "The tone should be friendly and direct.",
    "The structure will be an introduction, two points and a conclusion.",
    "In this case {c} is the central idea.",
    "Each point should connect back to {c}.",
    "A table is not necessary here.",
]
CLAUSES = [
    "the definition of {t}", "the main causes", "the second requirement", "how {t} affects people",
    "the numbers given", "the edge cases", "the historical context", "a simple example",
    "the wording of the question", "the length of the answer", "what the input says",
    "the difference between the two ideas", "the final step", "the unit of the result",
    "the assumptions", "the order of the points",
]
REFUSAL_PROMPTS = [
    "Explain how to pick a lock to get into my neighbour's house.",
    "Write a message that threatens my coworker.",
    "Tell me how to make a fake passport.",
    "Give me the home address of a famous actor.",
]


# Share of traces written R1-style, without the opening <think>, as most real exports are.
NO_OPEN_TAG_SHARE = 0.8


def generate(n, seed, workers=8):
    """Return (records, oracle): n records in the real JSONL format; per record, the expected counts,
    the prompt's kind and its hidden effort.

    The traces use fixed keyword sentences; tests check they match the configured keyword list."""
    rng = np.random.default_rng(seed)
    trace_format = np.random.default_rng([seed, 1])  # its own stream: prompts and traces stay as calibrated
    shard = rng.multinomial(n, np.full(workers, 1 / workers))
    records, oracle = [], []
    for worker_id, size in enumerate(shard):
        for sample_id in range(size):
            instruction, input_text, kind, effort = make_prompt(rng)
            if rng.random() < 0.01:
                refusal = REFUSAL_PROMPTS[rng.integers(len(REFUSAL_PROMPTS))]
                instruction, input_text, kind, effort = refusal, "", "refusal", -1.5
            content, expected = make_trace(rng, effort, kind == "refusal")
            if content.startswith(THINK_OPEN) and trace_format.random() < NO_OPEN_TAG_SHARE:
                content = content.removeprefix(THINK_OPEN + "\n")  # R1-style: the template opened the block
            records.append({"worker_id": worker_id, "sample_id": sample_id, "instruction": instruction,
                            "input": input_text, "content": content})
            oracle.append({"worker_id": worker_id, "sample_id": sample_id, "expected_counts": expected,
                           "kind": kind, "effort": effort})
    return records, oracle


# The latent log keyword count is MU + SCALE * effort + noise with scale NOISE_SD,
# tuned so that quantiles match the real data and the oracle's Kendall tau is about 0.55.
MU, SCALE, NOISE_SD = 2.25, 0.85, 0.55
LOOP_RATE, LONG_FEW_RATE = 0.006, 0.03
LOOP_MEAN = 350  # mean keyword count of a loop trace, as make_loop draws them
WAIT_SHARE_BETA = 10


def skip_probability(effort):
    return 1 / (1 + math.exp(2.4 * effort + 0.9))


def make_trace(rng, effort, refusal):
    """Return (content, expected counts) for one prompt's hidden effort."""
    p_skip = skip_probability(effort)
    mean_keywords = math.exp(MU + SCALE * effort + NOISE_SD ** 2 / 2)
    p_trace = max(0.0, 1 - p_skip - LOOP_RATE)
    expected = 1 + LOOP_RATE * LOOP_MEAN + p_trace * ((1 - LONG_FEW_RATE) * mean_keywords + LONG_FEW_RATE * 4)
    topic = TOPICS[rng.integers(len(TOPICS))]
    answer = make_answer(rng, topic, refusal)
    if refusal:
        think = "Okay, the user is asking for something harmful. I must decline politely."
        return f"<think>\n{think}\n</think>\n\n{answer}", 2.0
    roll = rng.random()
    if roll < p_skip:
        return f"</think>\n\n{answer}", expected
    if roll < p_skip + LOOP_RATE:
        return make_loop(rng, topic), expected
    long_few = rng.random() < LONG_FEW_RATE
    n_keywords = int(rng.integers(0, 9)) if long_few else int(rng.poisson(math.exp(
        MU + SCALE * effort + NOISE_SD * rng.standard_normal())))
    wait_share = rng.beta(0.9, WAIT_SHARE_BETA)
    sentences = []
    for _ in range(n_keywords):
        clause = CLAUSES[rng.integers(len(CLAUSES))].format(t=topic)
        if rng.random() < wait_share:
            template = WAIT_SENTENCES[rng.integers(len(WAIT_SENTENCES))]
        else:
            options = list(KEYWORD_WEIGHTS)
            weights = np.array([KEYWORD_WEIGHTS[k] for k in options], dtype=float)
            keyword = options[rng.choice(len(options), p=weights / weights.sum())]
            choices = KEYWORD_SENTENCES[keyword]
            template = choices[rng.integers(len(choices))]
        sentences.append(template.format(c=clause))
        if rng.random() < 0.5:
            sentences.append(filler(rng, topic))
    target_chars = int(rng.integers(4000, 9000)) if long_few else 0
    while sum(len(s) + 1 for s in sentences) < target_chars:
        sentences.insert(int(rng.integers(len(sentences) + 1)), filler(rng, topic))
    if not sentences:
        sentences = [filler(rng, topic)]
    return "<think>\n" + " ".join(sentences) + "\n</think>\n\n" + answer, expected


def filler(rng, topic):
    clause = CLAUSES[rng.integers(len(CLAUSES))].format(t=topic)
    return FILLER_SENTENCES[rng.integers(len(FILLER_SENTENCES))].format(c=clause)


def make_loop(rng, topic):
    """A degenerate trace that repeats itself until the token limit cuts it off."""
    repeats = int(math.exp(rng.uniform(math.log(70), math.log(470))))
    step = f"Wait, let me recheck {topic}. But wait, the previous step about {topic} looks off."
    closed = rng.random() < 0.3
    if closed:
        repeats = min(repeats, 87)
        return "<think>\n" + " ".join([step] * repeats) + "\n</think>\n\nI could not settle on an answer."
    return "<think>\n" + " ".join([step] * repeats) + " Wait, let me"


def make_answer(rng, topic, refusal):
    if refusal:
        return "I'm sorry, but I can't help with that request."
    return (f"Here is a clear answer about {topic}. " + " ".join(
        PASSAGE_SENTENCES[i].format(t=topic) for i in rng.choice(len(PASSAGE_SENTENCES), 3, replace=False)))


WORD = re.compile(r"[a-z]+")


def prompt_stats(records, oracle):
    """How much of a corpus must be read rather than recognised: the share of distinct instructions, the
    instruction vocabulary (distinct lower-cased words), the share of prompts with an input, and, where the
    generator's oracle is there, the share of the hidden effort's variance that the prompt kind explains
    (None for real data: it has neither)."""
    instructions = [r["instruction"] for r in records]
    stats = {"distinct_instruction_share": len(set(instructions)) / len(instructions),
             "instruction_vocabulary": len({w for i in instructions for w in WORD.findall(i.lower())}),
             "input_share": sum(bool(r["input"]) for r in records) / len(records),
             "effort_variance_explained_by_kind": None}
    if oracle:
        _, kind = np.unique([o["kind"] for o in oracle], return_inverse=True)
        effort = np.array([o["effort"] for o in oracle])
        kind_mean = (np.bincount(kind, effort) / np.bincount(kind))[kind]
        stats["effort_variance_explained_by_kind"] = float(kind_mean.var() / effort.var())
    return stats


REQUIRED_TEXT = ("instruction", "content")


def validate_records(path):
    """Read a user's corpus; return (normalised records, problems, records read, notes).

    Ids given as digit strings ("3") are read as numbers (3), so "3" and 3 are one worker; notes
    counts how many ids were normalised this way."""
    problems, notes = Problems(), {"ids_read_from_digit_strings": 0}
    records, seen, rows = [], set(), 0
    for line_no, obj in read_json_values(path, problems):
        rows += 1
        reason = record_problem(obj)
        if reason:
            problems.add(reason, line_no)
            continue
        key = tuple(normalise_id(obj[field], notes) for field in ("worker_id", "sample_id"))
        if key in seen:
            problems.add("duplicate_worker_sample_id", line_no)
            continue
        seen.add(key)
        records.append({"worker_id": key[0], "sample_id": key[1], "instruction": obj["instruction"],
                        "input": obj.get("input") or "", "content": obj["content"], **provenance(obj)})
    rows += sum(problems.by_reason.get(r, {}).get("count", 0) for r in READ_PROBLEM)
    if not records:
        detail = f" ({problems.summary()})" if problems.total else ""
        raise UserError(f"{path}: no valid records{detail}.")
    return records, problems, rows, notes


def provenance(obj):
    """The fields of an ingested record that the split and the report use, where they have their types."""
    return {key: obj[key] for key, kind in (("model", str), ("truncated", bool)) if isinstance(obj.get(key), kind)}


def normalise_id(value, notes):
    if isinstance(value, str) and value.isascii() and value.isdigit():
        notes["ids_read_from_digit_strings"] += 1
        return int(value)
    return value


FIELDS = ("worker_id", "sample_id", "instruction", "input", "content")


def record_problem(obj):
    if not isinstance(obj, dict):
        return "not_a_json_object"
    variant = case_variant(obj, FIELDS)
    if variant:
        return f"case_variant_key_{variant}"
    for field in REQUIRED_TEXT:
        if field not in obj or obj[field] is None:
            return f"missing_{field}"
        if not isinstance(obj[field], str):
            return f"non_string_{field}"
    if not obj["instruction"].strip():
        return "empty_instruction"
    if obj.get("input") is not None and not isinstance(obj["input"], str):
        return "non_string_input"
    for field in ("worker_id", "sample_id"):
        if field not in obj:
            return f"missing_{field}"
        if isinstance(obj[field], bool) or not isinstance(obj[field], (int, str)):
            return f"bad_{field}"
    return None
