"""Labeling schemes. Each fits on the train rows only and returns labels for every row plus a
LabelConfig (edges, k-means scaler and centres, per-label target statistics) from which a
label can be turned back into expected counts."""
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

from thinkcount import UserError
from thinkcount.data.features import feature_set
from thinkcount.methods.labelconfig import LabelConfig


def make_labels(frame, method, seed, name="this method", feature_sets=None):
    """frame: rows of one variant with columns text, split, counts, wait_counts; feature_sets: params'
    `features`, for k-means inputs and markers.

    Returns (labels as a numpy array, LabelConfig). The config carries the method's marker set and the
    feature set its leakage audit uses, so training, evaluation and the predictor need no params for them."""
    spec = method.labels
    target = frame[method.target].to_numpy(dtype=float)
    train = (frame["split"] == "train").to_numpy()
    where = f"method {name} on variant {method.variant}"
    check_learnable(target, train, method.target, where)
    saved = saved_feature_sets(method, feature_sets)
    labels, config = SCHEMES[spec.scheme](frame, target, train, spec, saved["audit_features"], seed)
    if method.task == "classification" or (spec.scheme == "manual" and method.task == "regression"):
        labels, config = as_classes(frame, labels, config, train, method, where)
    return labels, LabelConfig(scheme=spec.scheme, target=method.target, task=method.task, **config,
                               model_token=method.model_token, **saved)


def check_learnable(target, train, target_name, where):
    if not train.any():
        raise UserError(f"{where}: the variant has no train rows.")
    if np.ptp(target[train]) == 0:
        raise UserError(f"{where}: every train row has {target_name} {target[train][0]:g}; "
                        "a constant target leaves nothing to learn.")


def raw_labels(frame, target, train, spec, features, seed):
    return target, {}


def log1p_labels(frame, target, train, spec, features, seed):
    return np.log1p(target), {}


def binned_labels(frame, target, train, spec, features, seed):
    """The bin of each row under the scheme's edges (manual, equal width or equal frequency on the train rows),
    empty bins merged away."""
    edges = merge_empty_bins(bin_edges(spec, target[train]), target[train])
    config = {"edges": edges.tolist()}
    if spec.scheme == "equal_freq":
        config["bins_requested"] = spec.bins
    return assign_bins(target, edges), config


def as_classes(frame, labels, config, train, method, where):
    """Integer labels with per-label statistics (and names, for a classifier); refuses fewer than 2 classes."""
    labels = labels.astype(int)
    n_labels = config["k"] if method.labels.scheme == "kmeans" else len(config["edges"]) - 1
    present = len(np.unique(labels[train]))
    if present < 2:
        raise UserError(f"{where}: labels.scheme {method.labels.scheme} gives {present} class on the train rows "
                        f"({n_labels} defined); a classifier needs at least 2.")
    stats = label_stats(frame, labels, train, n_labels)
    config = {**config, "n_labels": n_labels, "label_stats": stats}
    if method.task == "classification":
        config["label_names"] = label_names(config.get("edges"), stats, method.target)
    return labels, config


def saved_feature_sets(method, feature_sets):
    """The marker set, and the audit's features: the labels' own when k-means made them (so k-means clusters on
    them too), else the markers'."""
    def saved(name):
        return feature_set(feature_sets, name) if name else None
    return {"markers": saved(method.markers),
            "audit_features": saved(getattr(method.labels, "features", None) or method.markers)}


def bin_edges(spec, train_target):
    if spec.scheme == "manual":
        edges = np.asarray(spec.edges, dtype=float)
        if len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise UserError("labels.edges must be at least two strictly increasing numbers.")
        return edges
    if spec.scheme == "equal_width":
        _, edges = pd.cut(train_target, spec.bins, retbins=True)
    else:
        # Heavy ties (a quarter of counts are 1) make quantile edges repeat: drop them.
        _, edges = pd.qcut(train_target, spec.bins, retbins=True, duplicates="drop")
    return np.asarray(edges, dtype=float)


def assign_bins(values, edges):
    """Bin index under pd.cut's convention (e_i, e_i+1], first bin closed; outside values clip."""
    return np.clip(np.searchsorted(edges, values, side="left") - 1, 0, len(edges) - 2)


def merge_empty_bins(edges, train_target):
    """Merge each bin with no train row into its neighbour, so that every label can be learned."""
    edges = np.asarray(edges, dtype=float)
    while len(edges) > 2:
        sizes = np.bincount(assign_bins(train_target, edges), minlength=len(edges) - 1)
        empty = np.flatnonzero(sizes == 0)
        if not len(empty):
            break
        i = empty[0]
        edges = np.delete(edges, i if i > 0 else 1)
    return edges


def kmeans_labels(frame, target, train, spec, features, seed):
    """Cluster [target, prompt features] as the seed did; label 0 is the cluster of lowest mean target.

    Features are standardised on the train rows; each K in k_min..k_max gets `restarts` inits and is
    scored 0.6 x silhouette + 0.4 x (1 - size std/mean), both min-max normalised over the candidates;
    the chosen K is refitted with `final_restarts` inits. The seed mapped clusters to labels by id,
    which does not order them by counts; ordering by mean target is our one deliberate change."""
    k_min, k_max = spec.k_min, spec.k_max
    if not 2 <= k_min <= k_max:
        raise UserError(f"labels.k_min ({k_min}) and k_max ({k_max}) must satisfy 2 <= k_min <= k_max.")
    x = np.column_stack([target, features.matrix(frame["text"])])
    scaler = StandardScaler().fit(x[train])
    x_train = scaler.transform(x[train])
    k_max = min(k_max, len(np.unique(x_train, axis=0)))
    if k_max < k_min:
        raise UserError(f"only {k_max} distinct train rows; k-means needs at least {k_min}.")
    candidates = [kmeans_candidate(x_train, k, spec, seed) for k in range(k_min, k_max + 1)]
    sil = normalise([c["silhouette"] for c in candidates])
    bal = 1 - normalise([c["balance"] for c in candidates])  # lower std/mean is better
    for c, s, b in zip(candidates, sil, bal):
        c["score"] = float(0.6 * s + 0.4 * b)
    k = max(candidates, key=lambda c: c["score"])["k"]
    model = KMeans(n_clusters=k, n_init=spec.final_restarts, random_state=seed).fit(x_train)
    means = [target[train][model.labels_ == c].mean() for c in range(k)]
    order = np.argsort(means)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    config = {
        "k": k, "feature_set": features.name, "features": ["target"] + features.columns,
        "scaler_mean": scaler.mean_.tolist(), "scaler_scale": scaler.scale_.tolist(),
        "centres": model.cluster_centers_[order].tolist(), "candidates": candidates,
    }
    return rank[model.predict(scaler.transform(x))], config


def kmeans_candidate(x_train, k, spec, seed):
    labels = KMeans(n_clusters=k, n_init=spec.restarts, random_state=seed).fit_predict(x_train)
    sizes = np.bincount(labels, minlength=k)
    sample = spec.silhouette_sample
    sample = None if sample is None or sample >= len(x_train) else sample
    silhouette = silhouette_score(x_train, labels, sample_size=sample, random_state=seed)
    return {"k": k, "silhouette": float(silhouette), "balance": float(sizes.std() / sizes.mean())}


# How each labels.scheme turns the target into labels: (frame, target, train, spec, features, seed) ->
# (labels, configuration).
SCHEMES = {"raw": raw_labels, "log1p": log1p_labels, "kmeans": kmeans_labels, "manual": binned_labels,
           "equal_width": binned_labels, "equal_freq": binned_labels}


def normalise(values):
    values = np.asarray(values, dtype=float)
    span = values.max() - values.min()
    return np.zeros_like(values) if span == 0 else (values - values.min()) / span


def label_stats(frame, labels, train, n_labels):
    """Per-label statistics of both targets on the train rows: how to turn a label into counts
    (mean) and into a ranking score that heavy-tail traces cannot dominate (log1p_mean)."""
    stats = []
    for label in range(n_labels):
        rows = frame[train & (labels == label)]
        entry = {"label": label, "n_train": len(rows)}
        for col in ("counts", "wait_counts"):
            values = rows[col]
            entry[col] = ({"mean": float(values.mean()), "log1p_mean": float(np.log1p(values).mean()),
                           "median": float(values.median()), "min": float(values.min()),
                           "max": float(values.max())} if len(rows) else None)
        stats.append(entry)
    return stats


def label_names(edges, stats, target):
    if edges is not None:
        return [f"({edges[i]:g}, {edges[i + 1]:g}]" for i in range(len(edges) - 1)]
    return [f"cluster {i} (mean {s[target]['mean']:.1f})" for i, s in enumerate(stats)]


def class_weights(train_labels, n_labels):
    """sklearn's 'balanced' weights, n_samples / (n_present_classes * count), over the labels present.

    A label missing from a subsampled train set gets weight 0: it is never a target there."""
    present = np.unique(train_labels)
    weights = np.zeros(n_labels)
    weights[present] = compute_class_weight("balanced", classes=present, y=train_labels)
    return weights
