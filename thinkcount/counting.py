"""The two targets: reflection keyword counts and "Wait"-only counts."""
import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
WAIT = re.compile(r"\bWait\b")


def keyword_pattern(keywords):
    # One alternation in the configured order, case-sensitive and without word
    # boundaries, as the seed counted: an earlier alternative wins at a position.
    return re.compile("|".join(re.escape(k) for k in keywords))


def think_text(content):
    """The reasoning inside <think>...</think>, or up to the end when the trace was cut off."""
    start = content.find(THINK_OPEN)
    start = 0 if start < 0 else start + len(THINK_OPEN)
    end = content.find(THINK_CLOSE, start)
    return content[start:] if end < 0 else content[start:end]


def count_keywords(content, pattern):
    end = content.find(THINK_CLOSE)
    before = content if end < 0 else content[:end]
    return len(pattern.findall(before)) + 1


def count_waits(content):
    start = content.find(THINK_OPEN)
    if start < 0:
        return 1
    end = content.find(THINK_CLOSE, start)
    if end < 0:
        return 1
    return len(WAIT.findall(content[start + len(THINK_OPEN):end])) + 1


def prompt_text(instruction, input_text=""):
    """The text a predictor sees: the instruction, then the input passage if any."""
    return instruction if not input_text else f"{instruction}\n{input_text}"
