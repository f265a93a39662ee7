import numpy as np
import pandas as pd

from thinkcount.data.records import filter_variants, make_split


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


