import numpy as np
import pandas as pd
import pytest

from thinkcount import UserError
from thinkcount.data.features import frame_texts
from thinkcount.data.frames import mean_of_samples, require_target, restrict_models
from thinkcount.data.records import compute_counts, filter_variants, make_split


def frame(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    counts = np.where(rng.random(n) < 0.3, 1, rng.integers(1, 300, n))
    return pd.DataFrame({"worker_id": np.arange(n) % 4, "sample_id": np.arange(n) // 4, "counts": counts,
                         "wait_counts": rng.integers(1, 10, n), "think_chars": rng.integers(0, 8000, n)})


def test_variants_account_for_every_dropped_row():
    f = frame()
    variants = filter_variants(f, max_counts=130, long_think_chars=4000, max_long_waits=5)
    assert set(variants) == {"all", "clean", "wait_only"}
    all_rows, report = variants["all"]
    assert len(all_rows) == len(f) and report["rows_dropped"] == 0
    clean, report = variants["clean"]
    assert (clean["counts"] <= 130).all()
    assert report["rows_dropped"] == (f["counts"] > 130).sum() == sum(report["dropped_by_reason"].values())
    wait_only, report = variants["wait_only"]
    assert not ((wait_only["think_chars"] >= 4000) & (wait_only["wait_counts"] <= 5)).any()
    assert report["rows_kept"] + report["rows_dropped"] == report["rows_in"] == len(f)
    assert report["rows_dropped"] == sum(report["dropped_by_reason"].values()) > 0


def test_split_is_seeded_disjoint_and_stratified():
    f = frame()
    a = make_split(f, seed=1, val_fraction=0.1, test_fraction=0.1, strata=10)
    b = make_split(f, seed=1, val_fraction=0.1, test_fraction=0.1, strata=10)
    c = make_split(f, seed=2, val_fraction=0.1, test_fraction=0.1, strata=10)
    assert a.equals(b) and not a.equals(c)
    assert a["split"].value_counts().to_dict() == {"train": 800, "val": 100, "test": 100}
    assert not a.duplicated(["worker_id", "sample_id"]).any()
    # Every counts decile is represented in test in its share.
    deciles = pd.qcut(f["counts"].rank(method="first"), 10, labels=False)
    per_decile = deciles[a["split"] == "test"].value_counts()
    assert len(per_decile) == 10 and per_decile.min() == per_decile.max() == 10




def test_every_sample_and_model_of_a_prompt_lands_in_one_split_and_each_model_set_is_spread():
    # 100 prompts answered by models a and b, 3 samples each; 50 answered by c alone, 2 samples each.
    rows = [(f"p{p}", m, 1 + (p * 7 + s) % 40) for p in range(100) for m in "ab" for s in range(3)]
    rows += [(f"q{p}", "c", 1 + p % 30) for p in range(50) for _ in range(2)]
    f = pd.DataFrame(rows, columns=["prompt_id", "model", "counts"]).assign(worker_id=0)
    f["sample_id"] = range(len(f))
    split = make_split(f, seed=3, val_fraction=0.1, test_fraction=0.2, strata=4)
    joined = f.assign(split=split["split"])
    assert (joined.groupby("prompt_id")["split"].nunique() == 1).all()
    prompts = joined.drop_duplicates("prompt_id")
    # round(0.2 * 150) = 30 test prompts: 20 of the a+b set's 100 and 10 of c's 50, by stratum.
    assert prompts["split"].value_counts().to_dict() == {"train": 105, "test": 30, "val": 15}
    assert prompts[prompts["split"] == "test"]["model"].value_counts().to_dict() == {"a": 20, "c": 10}
    assert (joined["split"] == "test").sum() == 20 * 6 + 10 * 2


def test_without_prompt_ids_the_split_is_by_row_and_a_repeated_prompt_is_kept_together():
    f = frame(200)
    by_row = make_split(f, seed=1, val_fraction=0.1, test_fraction=0.1, strata=5)
    assert by_row["split"].value_counts().to_dict() == {"train": 160, "val": 20, "test": 20}
    f["prompt_id"] = [f"p{i}" for i in range(200)]
    f.loc[[0, 1, 2], "prompt_id"] = "same"  # one prompt seen three times, as the embedded corpus repeats a few
    together = f.assign(split=make_split(f, seed=1, val_fraction=0.1, test_fraction=0.1, strata=5)["split"])
    assert together.loc[[0, 1, 2], "split"].nunique() == 1
    assert together.drop_duplicates("prompt_id")["split"].value_counts().sum() == 198


def test_truncated_traces_are_censored_from_every_variant_and_counted_unless_kept():
    f = frame(20).assign(truncated=[True] * 3 + [False] * 17)
    f.loc[0, "counts"] = 500  # truncated and over max_counts: counted once, as truncated
    variants = filter_variants(f, max_counts=130, long_think_chars=4000, max_long_waits=5)
    for kept, report in variants.values():
        assert not kept["truncated"].any() and report["dropped_by_reason"]["truncated"] == 3
        assert report["rows_dropped"] == sum(report["dropped_by_reason"].values())
    assert variants["all"][1]["rows_kept"] == 17
    kept = filter_variants(f, max_counts=130, long_think_chars=4000, max_long_waits=5, keep_truncated=True)
    assert kept["all"][1]["rows_kept"] == 20 and kept["all"][1]["dropped_by_reason"]["truncated"] == 0


def test_a_family_s_method_trains_on_its_models_rows_and_is_tested_on_every_row():
    f = pd.DataFrame({"model": ["deepseek-r1", "qwen3-32b", "DeepSeek-R1-Zero", None, "qwen3-14b"],
                      "split": ["train", "train", "val", "test", "test"], "text": ["a", "b", "c", "d", "e"]})
    kept = restrict_models(f, "(?i)deepseek")
    assert kept["text"].tolist() == ["a", "c", "d", "e"]
    assert restrict_models(f, None) is f
    assert frame_texts(kept, True) == ["[deepseek-r1, 200B+, distilled from none, thinking default] a",
                                       "[deepseek-r1, 200B+, distilled from none, thinking zero (no SFT)] c",
                                       "[unknown model] d", "[qwen3, 10-40B, distilled from none, thinking default] e"]
    assert frame_texts(kept, False) == ["a", "c", "d", "e"]
    with pytest.raises(UserError, match="no train rows come from a model matching 'gemini'"):
        restrict_models(f, "gemini")


def test_train_and_val_labels_are_the_mean_of_a_pair_s_samples_in_log_space_and_test_keeps_single_samples():
    f = pd.DataFrame({"prompt_id": ["p", "p", "p", "p", "q", "q"], "model": ["a", "a", "b", None, None, None],
                      "split": ["train"] * 4 + ["test"] * 2, "counts": [1, 15, 8, 3, 1, 63]})
    got = mean_of_samples(f, "counts").tolist()
    # exp(mean(log 2, log 16)) - 1 = sqrt(32) - 1; model b and the unknown model are pairs of their own.
    assert got == pytest.approx([32 ** 0.5 - 1, 32 ** 0.5 - 1, 8, 3, 1, 63])


def test_the_reasoning_tokens_target_is_kept_per_record_and_refused_where_any_record_lacks_it(counting):
    records = [{"worker_id": 0, "sample_id": i, "instruction": "Count.", "input": "", "reasoning_tokens": tokens,
                "content": "Wait, yes.</think>4"} for i, tokens in enumerate((120, 80, None))]
    counts = compute_counts(records, counting)
    assert counts["reasoning_tokens"].tolist()[:2] == [120, 80] and pd.isna(counts["reasoning_tokens"][2])
    assert require_target(counts.iloc[:2], "reasoning_tokens") is not None
    with pytest.raises(UserError, match="1 of 3 records have no reasoning_tokens"):
        require_target(counts, "reasoning_tokens")
