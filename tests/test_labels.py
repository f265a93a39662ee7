import json
from dataclasses import FrozenInstanceError
from typing import get_args

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.class_weight import compute_class_weight

from thinkcount.methods.labelconfig import LabelConfig
from thinkcount.methods.labels import SCHEMES, assign_bins, class_weights, make_labels, merge_empty_bins
from thinkcount.pipeline.config import Labels, Method

KMEANS = {"restarts": 10, "final_restarts": 10, "silhouette_sample": None}


def frame(counts, split=None, texts=None):
    n = len(counts)
    return pd.DataFrame({
        "counts": counts, "wait_counts": np.minimum(counts, 5),
        "split": split if split is not None else ["train"] * n,
        "text": texts if texts is not None else [f"Explain topic {i}." for i in range(n)],
    })


def method(scheme, task="classification", target="counts", **labels):
    if scheme == "kmeans":
        labels["features"] = "seed_kmeans"
    loss = {"classification": "ce", "regression": "mse", "ranking": "pairwise"}[task]
    return Method.model_validate({"variant": "all", "target": target, "task": task, "loss": loss,
                                  "labels": {"scheme": scheme, **labels}})


def test_every_scheme_the_configuration_accepts_has_a_labeling_function_and_no_other():
    specs = get_args(get_args(Labels)[0])
    accepted = {scheme for spec in specs for scheme in get_args(spec.model_fields["scheme"].annotation)}
    assert len(accepted) == 6 and accepted == set(SCHEMES)


def test_assign_bins_follows_pd_cut_and_clips_outside_values():
    edges = np.array([0, 1, 8, 16, 3000.0])
    values = np.array([0, 1, 2, 8, 9, 16, 17, 2999, 5000, -3])
    expected = pd.cut(np.clip(values, 0, 3000), edges, labels=False, include_lowest=True)
    assert assign_bins(values, edges).tolist() == list(expected)
    assert assign_bins(np.array([5000.0, -3.0]), edges).tolist() == [3, 0]


def test_equal_width_merges_empty_bins_so_every_label_has_train_rows():
    counts = np.array([1] * 50 + [2] * 30 + [100] * 5)  # the middle of the range is empty
    labels, config = make_labels(frame(counts), method("equal_width", bins=10), seed=0)
    assert config.n_labels == len(config.edges) - 1 < 10
    assert set(labels) == set(range(config.n_labels))
    assert all(s["n_train"] > 0 for s in config.label_stats)
    assert labels[counts == 100].min() == config.n_labels - 1


def test_equal_frequency_drops_duplicate_quantile_edges_and_records_it():
    counts = np.array([1] * 60 + list(range(2, 42)))  # 60% ties at 1
    labels, config = make_labels(frame(counts), method("equal_freq", bins=10), seed=0)
    assert config.bins_requested == 10
    assert config.n_labels < 10
    assert len(set(np.round(config.edges, 6))) == len(config.edges)
    assert (labels[counts == 1] == 0).all()


def test_manual_edges_with_a_class_of_one_row_and_an_empty_bin():
    counts = np.array([1] * 20 + [3] * 5 + [5] * 10 + [100] * 3 + [500])  # (8, 16] empty; (200, 1000] one row
    edges = [0, 1, 4, 8, 16, 200, 1000]
    labels, config = make_labels(frame(counts), method("manual", edges=edges), seed=0)
    assert config.edges == (0, 1, 4, 16, 200, 1000)  # the empty bin joined its lower neighbour
    stats = {s["label"]: s for s in config.label_stats}
    one = labels[counts == 500][0]
    assert stats[one]["n_train"] == 1 and stats[one]["counts"]["mean"] == 500
    weights = class_weights(labels, config.n_labels)
    assert np.isfinite(weights).all() and weights[one] == weights.max()


def test_labels_are_fitted_on_train_rows_only():
    counts = np.array([1, 2, 3, 4, 5, 6, 7, 8, 1000, 2000])
    split = ["train"] * 8 + ["test"] * 2
    _, config = make_labels(frame(counts, split), method("equal_width", bins=4), seed=0)
    assert config.edges[-1] <= 8.01
    assert all(s["counts"]["max"] <= 8 for s in config.label_stats)


def test_bin_index_regression_keeps_stats_to_map_back_to_counts():
    counts = np.array([1, 1, 5, 9, 20, 30, 40, 60, 100, 200, 300])
    labels, config = make_labels(frame(counts), method("manual", task="regression",
                                                       edges=[0, 1, 8, 16, 25, 35, 56, 81, 140, 239, 3000]), seed=0)
    assert labels.dtype.kind == "i" and labels.tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert config.label_names is None and len(config.label_stats) == config.n_labels


def test_kmeans_labels_are_ordered_by_mean_counts_and_config_is_saved(params):
    rng = np.random.default_rng(0)
    # Three well separated groups whose cluster ids would not follow their counts order.
    counts = np.concatenate([rng.normal(300, 5, 60), rng.normal(5, 1, 60), rng.normal(60, 3, 60)]).clip(1)
    texts = (["Why does it rain? And how? " * 3] * 60 + ["List three fruits."] * 60
             + ["Explain how engines work in detail please."] * 60)
    labels, config = make_labels(frame(counts, texts=texts), method("kmeans", k_min=3, k_max=3, **KMEANS), 0,
                                 feature_sets=params.features)
    means = [counts[labels == k].mean() for k in range(3)]
    assert means == sorted(means)
    assert [s["counts"]["mean"] for s in config.label_stats] == pytest.approx(means)
    assert config.k == 3 and len(config.centres) == 3
    assert len(config.scaler_mean) == len(config.features) == 10 and config.feature_set == "seed_kmeans"
    assert config.candidates[0]["k"] == 3 and "silhouette" in config.candidates[0]


def test_kmeans_chooses_k_by_silhouette_and_balance(params):
    rng = np.random.default_rng(1)
    counts = np.concatenate([rng.normal(c, 1, 50) for c in (5, 50, 100, 150)]).clip(1)
    labels, config = make_labels(frame(counts, texts=["Same prompt."] * 200),
                                 method("kmeans", k_min=2, k_max=6, **KMEANS), 0,
                                 feature_sets=params.features)
    scores = {c["k"]: c["score"] for c in config.candidates}
    assert config.k == max(scores, key=scores.get) == 4
    assert len(set(labels)) == 4


def test_class_weights_are_sklearn_balanced():
    labels = np.array([0] * 8 + [1] * 2 + [2])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert np.allclose(class_weights(labels, 3), expected)
    assert class_weights(labels, 3)[2] == pytest.approx(11 / 3)


def test_merge_empty_bins_handles_an_empty_first_bin():
    edges = merge_empty_bins(np.array([0, 1, 2, 3.0]), np.array([2.5, 3.0, 1.5]))
    assert edges.tolist() == [0, 2, 3]


def test_class_weights_give_zero_to_a_label_missing_from_the_train_sample():
    weights = class_weights(np.array([0, 0, 2]), 3)
    assert weights[1] == 0 and weights[0] == pytest.approx(0.75) and weights[2] == pytest.approx(1.5)


def test_label_config_is_immutable_and_round_trips_through_json():
    counts = np.array([1] * 60 + list(range(2, 42)))
    _, config = make_labels(frame(counts), method("equal_freq", bins=4), seed=0)
    with pytest.raises(FrozenInstanceError):
        config.n_labels = 3
    with pytest.raises(TypeError):
        config.label_stats[0]["counts"]["mean"] = 0.0
    saved = json.loads(json.dumps(config.to_dict()))
    assert "scale" not in saved and saved["n_labels"] == config.n_labels == 2  # quartiles 0, 1 and 2 are all 1
    assert LabelConfig.from_dict(saved) == config
    trained = config.trained(max_length=64, scale={"mean": 1.0, "std": 2.0})
    assert (trained.max_length, trained.scale["std"], config.max_length, config.scale) == (64, 2.0, None, None)
    with pytest.raises(ValueError, match="unknown keys"):
        LabelConfig.from_dict({**saved, "edge": [1, 2]})
