import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from thinkcount import UserError
from thinkcount.data.corpus import generate, prompt_stats, validate_records
from thinkcount.data.counting import (count_keywords, count_waits, keyword_pattern, lacks_opening_tag, prompt_text,
                                      think_text)
from thinkcount.data.prompts import FOLLOW_UPS
from thinkcount.data.records import KEY, compute_counts, oracle_tau
from thinkcount.evaluate.baselines import first_word_scores


@pytest.fixture(scope="module")
def sample(counting):
    records, oracle = generate(6000, 2024)
    return records, oracle, compute_counts(records, counting)


def test_generation_is_deterministic_per_seed(keywords):
    a, _ = generate(50, 1)
    b, _ = generate(50, 1)
    c, _ = generate(50, 2)
    assert a == b
    assert a != c


def test_records_have_the_real_format_and_identity_is_the_pair(sample):
    records, oracle, _ = sample
    assert all(set(r) == {"worker_id", "sample_id", "instruction", "input", "content"} for r in records)
    pairs = [(r["worker_id"], r["sample_id"]) for r in records]
    assert len(set(pairs)) == len(records)
    assert len({r["sample_id"] for r in records}) < len(records)  # sample_id repeats across workers
    assert len({r["worker_id"] for r in records}) == 8
    closed = [r["content"] for r in records if "</think>" in r["content"]]
    r1_style = sum(lacks_opening_tag(c) for c in closed)
    assert 0.7 * len(closed) <= r1_style <= 0.9 * len(closed)  # most real exports have no opening <think>
    assert sum(c.startswith("<think>") for c in closed) == len(closed) - r1_style
    assert [(o["worker_id"], o["sample_id"]) for o in oracle] == pairs


# Real data (40,762 rows): keyword counts p25 1, p50 8, p75 17, p90 28, p95 41, p99 98, max 943,
# about 0.6% above 130; "Wait" counts p50 1, p75 2, p90 4, p99 12, max 88.
COUNT_BANDS = {25: (1, 1), 50: (6, 10), 75: (14, 21), 90: (23, 34), 95: (34, 50), 99: (70, 130)}
WAIT_BANDS = {50: (1, 1), 75: (2, 3), 90: (3, 5), 99: (9, 16)}


def test_counts_quantiles_match_the_real_data_within_bands(sample):
    counts = sample[2]
    for q, (lo, hi) in COUNT_BANDS.items():
        assert lo <= np.percentile(counts["counts"], q) <= hi, q
    assert 400 <= counts["counts"].max() <= 1000
    assert 0.003 <= (counts["counts"] > 130).mean() <= 0.012
    for q, (lo, hi) in WAIT_BANDS.items():
        assert lo <= np.percentile(counts["wait_counts"], q) <= hi, q
    assert 40 <= counts["wait_counts"].max() <= 100


def test_oracle_signal_is_real_but_partial(sample):
    _, oracle, counts = sample
    assert 0.45 <= oracle_tau(counts, oracle) <= 0.65


def test_corpus_holds_the_noise_of_the_real_data(sample):
    records, _, counts = sample
    contents = [r["content"] for r in records]
    assert sum(c.startswith("</think>") for c in contents) > 0.15 * len(records)  # no think block
    loops = [c for c in contents if "</think>" not in c]
    assert loops and all(c.count("Wait,") > 60 for c in loops)  # cut-off "Wait" loops
    assert ((counts["think_chars"] >= 4000) & (counts["wait_counts"] <= 5)).sum() > 50
    assert any("I can't help" in c for c in contents)  # refusals


def test_prompt_families_are_not_decided_by_one_keyword(sample):
    records = sample[0]
    instructions = [r["instruction"] for r in records]
    openers = {i.split()[0] for i in instructions}
    assert len(openers) > 30
    assert sum(bool(r["input"]) for r in records) > 0.1 * len(records)


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def good(worker, sample_id, **extra):
    return json.dumps({"worker_id": worker, "sample_id": sample_id, "instruction": "Explain rain.", "input": "",
                       "content": "<think>\nOkay.\n</think>\n\nRain falls.", **extra})


def test_user_corpus_counts_every_bad_line_with_its_line_number(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [
        good(0, 0),
        "{not json",
        json.dumps({"worker_id": 0, "sample_id": 1, "content": "x"}),
        json.dumps({"worker_id": 0, "sample_id": 2, "instruction": "Hi"}),
        json.dumps({"worker_id": 0, "sample_id": 3, "instruction": 5, "content": "x"}),
        good(0, 0),
        good(1, 0),
        "[1, 2]",
    ])
    records, problems, rows, _ = validate_records(path)
    assert [(r["worker_id"], r["sample_id"]) for r in records] == [(0, 0), (1, 0)]
    assert rows == 8
    assert problems.by_reason == {
        "malformed_json": {"count": 1, "lines": [2]},
        "not_a_json_object": {"count": 1, "lines": [8]},
        "missing_instruction": {"count": 1, "lines": [3]},
        "missing_content": {"count": 1, "lines": [4]},
        "non_string_instruction": {"count": 1, "lines": [5]},
        "duplicate_worker_sample_id": {"count": 1, "lines": [6]},
    }


def test_user_corpus_without_valid_records_or_file_stops_with_one_sentence(tmp_path):
    with pytest.raises(UserError, match="no valid records"):
        validate_records(write_lines(tmp_path / "empty.jsonl", []))
    with pytest.raises(UserError, match="no valid records.*malformed_json"):
        validate_records(write_lines(tmp_path / "bad.jsonl", ["nope"]))
    with pytest.raises(UserError, match="no such file"):
        validate_records(tmp_path / "missing.jsonl")


def test_generated_traces_have_no_accidental_keyword_matches(keywords):
    """Filler text must not contain keywords, or the calibration would drift silently."""
    from thinkcount.data import corpus
    p = keyword_pattern(keywords)
    for sentence in corpus.FILLER_SENTENCES + corpus.PASSAGE_SENTENCES:
        for topic in corpus.TOPICS:
            text = sentence.format(c=topic, t=topic)
            assert count_keywords(f"<think>{text}</think>", p) == 1, text
    for keyword, sentences in corpus.KEYWORD_SENTENCES.items():
        for s in sentences:
            assert count_keywords(f"<think>{s.format(c='the final step')}</think>", p) == 2, s
    assert count_waits("<think>" + think_text("<think>" + corpus.WAIT_SENTENCES[0]) + "</think>") == 2


# Targets for a corpus that must be read, not recognised (issue 8, item 7).
def test_prompt_stats_by_hand():
    records = [{"instruction": "Write a poem.", "input": ""}, {"instruction": "Write a poem.", "input": "x"},
               {"instruction": "Explain rain, please.", "input": ""}, {"instruction": "List 3 fruits", "input": ""}]
    oracle = [{"kind": "w", "effort": 1.0}, {"kind": "w", "effort": 3.0}, {"kind": "e", "effort": 2.0},
              {"kind": "e", "effort": 6.0}]
    stats = prompt_stats(records, oracle)
    assert stats["distinct_instruction_share"] == 0.75
    assert stats["instruction_vocabulary"] == 8  # write a poem explain rain please list fruits
    assert stats["input_share"] == 0.25
    # kind means 2 and 4 around the mean 3: variance 1 of a total (4 + 0 + 1 + 9) / 4 = 3.5
    assert stats["effort_variance_explained_by_kind"] == pytest.approx(1 / 3.5)
    assert prompt_stats(records, [])["effort_variance_explained_by_kind"] is None  # real data: undefined


def test_instructions_are_distinct_varied_and_not_given_away_by_their_kind(sample):
    stats = prompt_stats(*sample[:2])
    assert stats["distinct_instruction_share"] >= 0.95
    assert stats["instruction_vocabulary"] >= 2000
    assert 0.25 <= stats["input_share"] <= 0.42  # about a third have an input
    assert 0.05 < stats["effort_variance_explained_by_kind"] <= 0.40


def test_prompts_open_the_way_alpaca_does(sample):
    openers = {r["instruction"].split()[0] for r in sample[0]}
    assert {"Generate", "Write", "Describe", "Explain", "Create", "Give", "Name", "Identify", "Classify",
            "Rewrite", "What", "How", "List", "Suggest"} <= openers


def test_first_word_carries_at_most_half_of_the_oracle(sample):
    records, oracle, counts = sample
    frame = counts.merge(pd.DataFrame(oracle), on=KEY)
    frame["text"] = [prompt_text(r["instruction"], r["input"]) for r in records]
    test = np.random.default_rng(0).random(len(frame)) < 0.2
    score, _ = first_word_scores(frame[~test], frame[test])
    first_word_tau = kendalltau(score, frame.loc[test, "counts"]).statistic
    oracle_tau_test = kendalltau(frame.loc[test, "expected_counts"], frame.loc[test, "counts"]).statistic
    assert 0 < first_word_tau <= 0.5 * oracle_tau_test


def test_effort_grows_with_what_a_prompt_asks(sample):
    """Each follow-up question adds effort, whatever the kind: mean effort rises with their number."""
    records, oracle, _ = sample
    frame = pd.DataFrame(oracle)
    frame["follow_ups"] = [sum(q in r["instruction"] for q in FOLLOW_UPS) for r in records]
    means = frame[frame["kind"] != "refusal"].groupby("follow_ups")["effort"].mean()
    assert list(means.index[:3]) == [0, 1, 2]
    assert means.iloc[0] + 0.2 < means.iloc[1] < means.iloc[2] - 0.2
