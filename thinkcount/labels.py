"""Labeling schemes. Each fits on the train rows only and returns labels for every row plus a
configuration (edges, k-means scaler and centres, per-label target statistics) from which a
label can be turned back into expected counts."""
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

from thinkcount import UserError
from thinkcount.features import KMEANS_FEATURES, feature_matrix

SILHOUETTE_SAMPLE = 2000


def make_labels(frame, method, seed, name="this method"):
    """frame: rows of one variant with columns text, split, counts, wait_counts.

    Returns (labels as a numpy array, config dict)."""
    spec = method["labels"]
    target = frame[method["target"]].to_numpy(dtype=float)
    train = (frame["split"] == "train").to_numpy()
    where = f"method {name} on variant {method['variant']}"
    if not train.any():
        raise UserError(f"{where}: the variant has no train rows.")
    if np.ptp(target[train]) == 0:
        raise UserError(f"{where}: every train row has {method['target']} {target[train][0]:g}; "
                        "a constant target leaves nothing to learn.")
    scheme = spec["scheme"]
    if scheme == "raw":
        labels, config = target, {}
    elif scheme == "log1p":
        labels, config = np.log1p(target), {}
    elif scheme == "kmeans":
        labels, config = kmeans_labels(frame, target, train, spec["k_min"], spec["k_max"], seed)
    else:
        edges = bin_edges(scheme, spec, target[train])
        edges = merge_empty_bins(edges, target[train])
        labels = assign_bins(target, edges)
        config = {"edges": edges.tolist()}
        if scheme == "equal_freq":
            config["bins_requested"] = spec["bins"]
    config = {"scheme": scheme, "target": method["target"], "task": method["task"], **config}
    if method["task"] == "classification" or (scheme == "manual" and method["task"] == "regression"):
        labels = labels.astype(int)
        config["n_labels"] = config["k"] if scheme == "kmeans" else len(config["edges"]) - 1
        present = len(np.unique(labels[train]))
        if present < 2:
            raise UserError(f"{where}: labels.scheme {scheme} gives {present} class on the train rows "
                            f"({config['n_labels']} defined); a classifier needs at least 2.")
        config["label_stats"] = label_stats(frame, labels, train, config["n_labels"])
        if method["task"] == "classification":
            config["label_names"] = label_names(config)
    return labels, config


def bin_edges(scheme, spec, train_target):
    if scheme == "manual":
        edges = np.asarray(spec["edges"], dtype=float)
        if len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise UserError("labels.edges must be at least two strictly increasing numbers.")
        return edges
    if scheme == "equal_width":
        _, edges = pd.cut(train_target, spec["bins"], retbins=True)
    else:
        # Heavy ties (a quarter of counts are 1) make quantile edges repeat: drop them.
        _, edges = pd.qcut(train_target, spec["bins"], retbins=True, duplicates="drop")
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


def kmeans_labels(frame, target, train, k_min, k_max, seed):
    """Cluster [target, prompt features]; choose K by silhouette and balance; order labels by mean target."""
    if not 2 <= k_min <= k_max:
        raise UserError(f"labels.k_min ({k_min}) and k_max ({k_max}) must satisfy 2 <= k_min <= k_max.")
    features = np.column_stack([target, feature_matrix(frame["text"], KMEANS_FEATURES)])
    scaler = StandardScaler().fit(features[train])
    x_train = scaler.transform(features[train])
    k_max = min(k_max, len(np.unique(x_train, axis=0)))
    if k_max < k_min:
        raise UserError(f"only {k_max} distinct train rows; k-means needs at least {k_min}.")
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(x_train), min(SILHOUETTE_SAMPLE, len(x_train)), replace=False)
    candidates = []
    for k in range(k_min, k_max + 1):
        model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x_train)
        sizes = np.bincount(model.labels_, minlength=k)
        candidates.append({"k": k, "model": model,
                           "silhouette": float(silhouette_score(x_train[sample], model.labels_[sample])),
                           "balance": float(sizes.std() / sizes.mean())})
    sil = normalise([c["silhouette"] for c in candidates])
    bal = 1 - normalise([c["balance"] for c in candidates])  # lower std/mean is better
    for c, s, b in zip(candidates, sil, bal):
        c["score"] = float(0.6 * s + 0.4 * b)
    best = max(candidates, key=lambda c: c["score"])
    model = best["model"]
    clusters = model.predict(scaler.transform(features))
    # Label 0 is the cluster with the lowest mean target on the train rows.
    means = [target[train][model.labels_ == c].mean() for c in range(best["k"])]
    order = np.argsort(means)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    config = {
        "k": best["k"],
        "features": ["target"] + KMEANS_FEATURES,
        "scaler_mean": scaler.mean_.tolist(), "scaler_scale": scaler.scale_.tolist(),
        "centres": model.cluster_centers_[order].tolist(),
        "candidates": [{k: c[k] for k in ("k", "silhouette", "balance", "score")} for c in candidates],
    }
    return rank[clusters], config


def normalise(values):
    values = np.asarray(values, dtype=float)
    span = values.max() - values.min()
    return np.zeros_like(values) if span == 0 else (values - values.min()) / span


def label_stats(frame, labels, train, n_labels):
    """Per-label statistics of both targets on the train rows: how to turn a label into counts."""
    stats = []
    for label in range(n_labels):
        rows = frame[train & (labels == label)]
        entry = {"label": label, "n_train": len(rows)}
        for col in ("counts", "wait_counts"):
            values = rows[col]
            entry[col] = ({"mean": float(values.mean()), "median": float(values.median()),
                           "min": float(values.min()), "max": float(values.max())} if len(rows) else None)
        stats.append(entry)
    return stats


def label_names(config):
    if "edges" in config:
        e = config["edges"]
        return [f"({e[i]:g}, {e[i + 1]:g}]" for i in range(len(e) - 1)]
    return [f"cluster {i} (mean {s[config['target']]['mean']:.1f})" for i, s in enumerate(config["label_stats"])]


def class_weights(train_labels, n_labels):
    """sklearn's 'balanced' weights, n_samples / (n_present_classes * count), over the labels present.

    A label missing from a subsampled train set gets weight 0: it is never a target there."""
    present = np.unique(train_labels)
    weights = np.zeros(n_labels)
    weights[present] = compute_class_weight("balanced", classes=present, y=train_labels)
    return weights
