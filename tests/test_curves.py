"""Learning curves (thinkcount/serve/curves.py): each source as the deployment, a prior from the others, adapt on k
own traces; and the adapt choices they rest on (tau within model, a fitted mix kept only beyond noise)."""
import numpy as np
import pandas as pd
import pytest

from thinkcount.pipeline.config import Curves
from thinkcount.evaluate.metrics import tau_within
from thinkcount.serve.adapt import choose
from thinkcount.data.real import source_of
from thinkcount.serve.curves import learning_curves
from thinkcount.serve.curves_report import chart, markdown

SPEC = Curves(sizes=[25, 100], repeats=2, seed=0, min_traces=50, share=0.7, embedder=None)


def source_rows(repo, n, reversed_effort, seed):
    """n traces of one source: effort follows how many questions a prompt asks (1 to 6), or the reverse; a filler
    of random length keeps the prompt's length unrelated to it. Two models, the second thinking twice as much."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        questions = int(rng.integers(1, 7))
        effort = 7 - questions if reversed_effort else questions
        model = ("m1", "m2")[i % 2]
        text = f"Item {i} " + "filler " * int(rng.integers(5, 60)) + "Why? " * questions
        rows.append({"worker_id": f"{repo.replace('/', '__')}/file.jsonl", "sample_id": i, "text": text,
                     "prompt_id": f"{repo}-{i}", "model": model, "truncated": False,
                     "counts": (1 + 4 * effort + int(rng.integers(0, 3))) * (2 if model == "m2" else 1)})
    return rows


def frame():
    return pd.DataFrame(source_rows("own/deployment", 300, False, 1) + source_rows("pub/one", 200, True, 2)
                        + source_rows("pub/two", 200, True, 3))


def test_a_source_is_the_repository_of_its_trace_file():
    assert source_of("xlr8harder__speechmap-data/us_criticism.jsonl.gz") == "xlr8harder/speechmap-data"
    assert source_of(3) == "embedded" and source_of("shard-0") == "embedded"


def test_tau_within_model_weights_each_model_by_its_traces():
    # m1 ranks its three traces perfectly (tau 1), m2 its two backwards (tau -1): (3 x 1 + 2 x -1) / 5 = 0.2
    score, y = np.array([1.0, 2.0, 3.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    assert tau_within(score, y, ["m1", "m1", "m1", "m2", "m2"]) == pytest.approx(0.2)
    assert tau_within(np.ones(3), y[:3], ["m1"] * 3) is None  # constant scores: undefined, not 0


def test_a_fitted_mix_replaces_the_base_only_beyond_a_standard_error():
    base = [0.1, 0.2, 0.1]
    # paired gains 0.05, -0.1, 0.1: mean 0.017 below its standard error 0.06
    assert choose({("base", None): base, ("scratch", 1.0): [0.15, 0.1, 0.2]}, ("base", "scratch")) == ("base", None)
    assert choose({("base", None): base, ("scratch", 1.0): [0.5, 0.6, 0.55]}, ("base", "scratch")) == ("scratch", 1.0)
    # without the base among the mixes, the best mean wins
    assert choose({("scratch", 1.0): [0.1, 0.2, 0.1], ("scratch", 10.0): [0.2, 0.2, 0.3]}, ("scratch",)) \
        == ("scratch", 10.0)


def test_own_traces_overturn_a_prior_that_ranks_the_deployment_backwards():
    result = learning_curves(frame(), SPEC)
    assert list(result["deployments"]) == ["own/deployment", "pub/one", "pub/two"]
    own = result["deployments"]["own/deployment"]
    within = own["rows"]["within"]
    assert own["traces"] == 300 and own["prompts"] == 300 and own["models"] == 2
    assert own["prior_sources"] == ["pub/one", "pub/two"]
    assert within["prior"]["0"]["mean"] < -0.5            # the public sources taught the reverse
    assert abs(within["prompt length"]["0"]["mean"]) < 0.2  # length carries no signal here
    assert within["adapt"]["25"]["mean"] > 0.5 and within["adapt"]["all"]["mean"] > 0.7
    assert within["scratch"]["all"]["mean"] > 0.7 and own["ceiling"]["within"] > 0.7
    assert own["k_beats_floor"] == "25" and own["k_to_share"] == "25"
    assert own["pool"] == 150 and list(within["adapt"]) == ["25", "100", "all"]
    # a public source as the deployment: its own traces teach it the reverse ranking the others disagree on
    assert result["deployments"]["pub/one"]["rows"]["within"]["adapt"]["all"]["mean"] > 0.7


def test_one_source_leaves_the_curves_undefined_and_the_report_says_why(tmp_path):
    one = frame()
    one = one[one["worker_id"].str.startswith("own")]
    result = learning_curves(one, SPEC)
    assert result["deployments"] == {} and "1 source(s)" in result["undefined"]
    text = markdown(result, "make real")
    assert "Undefined: 1 source(s)" in text
    chart(result, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_the_report_names_each_deployment_and_its_thresholds(tmp_path):
    result = learning_curves(frame(), SPEC)
    text = markdown(result, "make real")
    assert "| own/deployment | 300 / 300 / 2 |" in text
    assert "adapt minus the better of prior and scratch" in text and "## Pooled over models" in text
    chart(result, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
