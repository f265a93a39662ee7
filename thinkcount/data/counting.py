"""The two targets: reflection keyword counts and "Wait"-only counts.

Real R1-style exports usually have no opening <think> (the chat template put it in the prompt):
`...thinking...</think>\n\nanswer`. `think_start` says where the think block starts:
  tag           the seed's formula: only text between <think> and </think>; no block without both tags
  tag_or_start  from <think>, or from the start of the content when there is none, to </think>
Either way a trace cut off before </think> has no closed block (wait_counts 1, as the seed had it).
"""
import hashlib
import re
from pathlib import Path

import yaml

from thinkcount import UserError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THINK_STARTS = ("tag", "tag_or_start")


def keyword_pattern(keywords, case_sensitive=True):
    # One alternation in the configured order and without word boundaries, as the seed counted:
    # an earlier alternative wins at a position.
    return re.compile("|".join(re.escape(k) for k in keywords), 0 if case_sensitive else re.IGNORECASE)


def wait_pattern(case_sensitive=True):
    return re.compile(r"\bWait\b", 0 if case_sensitive else re.IGNORECASE)


def think_block(content, think_start="tag_or_start"):
    """The text of the closed think block under the think_start rule; None when there is none
    (no closing tag, as in a trace cut off at the token limit, or no opening tag under `tag`)."""
    open_at = content.find(THINK_OPEN)
    close_at = content.find(THINK_CLOSE, max(open_at, 0))
    if open_at >= 0 and close_at >= 0:
        return content[open_at + len(THINK_OPEN):close_at]
    if think_start == "tag_or_start" and lacks_opening_tag(content):
        return content[:content.find(THINK_CLOSE)]
    return None


def think_text(content):
    """The reasoning, also when cut off: from <think> (or the start) to </think> (or the end)."""
    start = content.find(THINK_OPEN)
    start = 0 if start < 0 else start + len(THINK_OPEN)
    end = content.find(THINK_CLOSE, start)
    return content[start:] if end < 0 else content[start:end]


def lacks_opening_tag(content):
    """True for an R1-style trace: a closing </think> with no <think> before it."""
    close_at = content.find(THINK_CLOSE)
    return close_at >= 0 and THINK_OPEN not in content[:close_at]


def count_keywords(content, pattern):
    end = content.find(THINK_CLOSE)
    before = content if end < 0 else content[:end]
    return len(pattern.findall(before)) + 1


def count_waits(content, think_start="tag_or_start", pattern=wait_pattern()):
    block = think_block(content, think_start)
    return 1 if block is None else len(pattern.findall(block)) + 1


def prompt_text(instruction, input_text=""):
    """The text a predictor sees: the instruction, then the input passage if any."""
    return instruction if not input_text else f"{instruction}\n{input_text}"


def prompt_id(text):
    """A prompt's identity across models and samples: a hash of its text with whitespace collapsed."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def rules_from_params(path):
    """(keywords, case_sensitive) of a params file's counts section, for counting outside the pipeline (the
    proxy's traffic log, adapt), or one sentence."""
    try:
        counts = yaml.safe_load(Path(path).read_text(encoding="utf-8")).get("counts") or {}
    except (OSError, yaml.YAMLError, AttributeError) as e:
        raise UserError(f"{path}: cannot read its counts section ({type(e).__name__}); keywords are counted with "
                        "it (--counts-params).") from None
    keywords = counts.get("keywords")
    if not (isinstance(keywords, list) and keywords and all(isinstance(k, str) and k for k in keywords)):
        raise UserError(f"{path}: counts.keywords must be a non-empty list of non-empty strings.")
    return keywords, bool(counts.get("case_sensitive", True))
