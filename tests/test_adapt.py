"""`python -m thinkcount adapt`: a head fitted on a deployment's own traces over a base model, on traffic whose
effort the base does not know; it fits, seals, loads, serves and refuses too few traces."""
import json

import httpx
import numpy as np
import pytest
from scipy.stats import kendalltau

from conftest import verb
from test_serve import service
from thinkcount.serve.adapt import censored_target, folds_by_prompt
from thinkcount.serve.head import AdaptedHead, design, fit_mix
from thinkcount.serve.predict import Predictor

adapt = verb("adapt")
TOPICS = ["rivers", "taxes", "bridges", "poems", "engines", "markets", "vaccines", "planets", "novels", "courts"]


def own_traces(n, seed):
    """Prompts whose effort follows how many questions they ask (1 to 6), which the base never learned: counts
    are 1 + 4 x questions + noise (Wait repeated in the trace)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        questions = int(rng.integers(1, 7))
        topic = TOPICS[i % len(TOPICS)]
        prompt = f"About {topic} ({i}): " + " ".join(f"What is point {q} of {topic}?" for q in range(questions))
        waits = 4 * questions + int(rng.integers(0, 3))
        rows.append({"instruction": prompt, "input": "", "model": "qwen3-8b",
                     "content": "Wait. " * waits + "\n</think>\n\nDone."})
    return rows


def write(path, rows):
    path.write_text("".join(json.dumps({"worker_id": 0, "sample_id": i, **r}) + "\n" for i, r in enumerate(rows)))
    return path


def counts_of(rows):
    return np.array([r["content"].count("Wait") + 1 for r in rows])


@pytest.mark.slow
def test_adapt_learns_what_the_base_does_not_and_serves_it(model_dir, tmp_path, capsys):
    train, held = own_traces(200, seed=1), own_traces(100, seed=2)
    out = tmp_path / "adapted"
    assert adapt(["--base", str(model_dir), "--traces", str(write(tmp_path / "own.jsonl", train)),
                  "--out", str(out)]) == 0
    provenance = json.loads((out / "adapt.json").read_text())
    assert provenance["traces"]["usable"] == 200 and provenance["mix"] != "base"
    assert provenance["traces"]["files"][str(tmp_path / "own.jsonl")] and provenance["base"] == str(model_dir)
    prompts, truth = [r["instruction"] for r in held], counts_of(held)
    adapted = Predictor.load(out).predict(prompts)
    base = Predictor.load(model_dir).predict(prompts)
    held_tau = kendalltau([r["score"] for r in adapted], truth).statistic
    base_tau = kendalltau([r["score"] for r in base], truth).statistic
    # from scratch: the scratch mix's ridge fitted on the same own traces
    x_train = design([r["instruction"] for r in train], np.zeros(len(train)))
    scratch = fit_mix("scratch", x_train, np.log1p(counts_of(train)), 10.0)
    scratch_tau = kendalltau(scratch.predict(design(prompts, np.zeros(len(prompts)))[:, :-1]), truth).statistic
    assert held_tau > base_tau + 0.3 and held_tau >= max(base_tau, scratch_tau) - 0.05
    assert [r["base_expected_counts"] for r in adapted] == pytest.approx([r["expected_counts"] for r in base])
    assert "chose" in capsys.readouterr().out
    with service(out) as (url, _):  # the service loads an adapted folder like any other
        reply = httpx.post(f"{url}/score", json={"prompts": prompts[:3]}).json()["results"]
    assert [r["score"] for r in reply] == pytest.approx([r["score"] for r in adapted[:3]], abs=1e-4)


def test_too_few_traces_or_an_unreadable_file_is_one_sentence(model_dir, tmp_path, capsys):
    few = write(tmp_path / "few.jsonl", own_traces(10, seed=0))
    assert adapt(["--base", str(model_dir), "--traces", str(few), "--out", str(tmp_path / "o")]) == 2
    assert "10 usable traces in 1 file(s)" in capsys.readouterr().err and not (tmp_path / "o").exists()
    (tmp_path / "bad.jsonl").write_bytes(b"\x00\xff not json\n")
    assert adapt(["--base", str(model_dir), "--traces", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "o")]) == 1
    assert f"{tmp_path / 'bad.jsonl'}: no record in it could be read" in capsys.readouterr().err


def test_a_truncated_trace_is_a_lower_bound():
    # One feature; three complete traces on the line log1p(y) = x, and one truncated at 1 count where x says more.
    x = np.column_stack([[1.0, 2.0, 3.0, 3.0], np.zeros(4)])
    y = np.expm1([1.0, 2.0, 3.0, 0.0])
    y[3] = 1.0
    target = censored_target("scratch", x, y, np.array([False, False, False, True]), alpha=1e-6, rounds=2)
    assert target[:3] == pytest.approx(np.log1p(y[:3]))
    assert target[3] > np.log1p(1.0) + 0.5  # raised toward what its x predicts, not its cut-off count


def test_folds_keep_a_prompt_together():
    groups = np.array(["a", "b", "a", "c", "b", "d", "e", "a"])
    fold = folds_by_prompt(groups, 3, seed=0)
    assert all(len(set(fold[groups == g])) == 1 for g in set(groups))


def test_a_saved_head_loads_with_the_same_predictions(tmp_path):
    x = design(["What? Why?", "Hi.", "One. Two. Three?"], [0.5, 1.0, 2.0])
    head = AdaptedHead("stacked", {"": fit_mix("stacked", x, np.array([1.0, 0.5, 2.0]), 1.0)})
    head.save(tmp_path)
    base = [{"expected_counts": float(np.expm1(b))} for b in (0.5, 1.0, 2.0)]
    prompts = ["What? Why?", "Hi.", "One. Two. Three?"]
    assert AdaptedHead.load(tmp_path).apply(prompts, [None] * 3, base) == head.apply(prompts, [None] * 3, base)
