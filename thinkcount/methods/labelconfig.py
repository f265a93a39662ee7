"""The label configuration: one typed, immutable record of what labeling decided for a method.

Labeling builds it; training returns a copy completed with what the fitted model needs at inference
(`trained`); inference, evaluation and the predictor read it. It is saved as flat JSON beside the labels
(data/labels/<method>/config.json) and beside the model (models/<method>/label_config.json)."""
from dataclasses import dataclass, fields, replace
from types import MappingProxyType

from thinkcount.data.features import FeatureSet


def frozen(value):
    """Lists become tuples and dicts read-only mappings, all the way down."""
    if isinstance(value, dict):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return value


def thawed(value):
    """The JSON form of a frozen value."""
    if isinstance(value, MappingProxyType):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thawed(v) for v in value]
    return value


@dataclass(frozen=True)
class LabelConfig:
    scheme: str
    target: str
    task: str
    markers: FeatureSet | None = None  # marker tokens the model's text is prefixed with
    model_token: bool = False  # the answering model's name comes before the prompt (features.model_text)
    audit_features: FeatureSet | None = None  # the leakage audit's features (the labels' own for k-means)
    edges: tuple | None = None  # bin schemes: the bins' edges, after merging empty ones
    bins_requested: int | None = None  # equal_freq: the bins asked for before ties merged some
    k: int | None = None  # k-means: the chosen K, its inputs, scaler and centres, and every candidate K's scores
    feature_set: str | None = None
    features: tuple | None = None
    scaler_mean: tuple | None = None
    scaler_scale: tuple | None = None
    centres: tuple | None = None
    candidates: tuple | None = None
    n_labels: int | None = None  # label schemes: how many labels, and per label its train statistics
    label_stats: tuple | None = None
    label_names: tuple | None = None  # classifiers only
    # Added by training:
    max_length: int | None = None  # tokens the model reads
    scale: MappingProxyType | None = None  # regression: the standardisation of the targets
    class_weights: tuple | None = None  # weighted_ce: the loss's class weights
    calibration: MappingProxyType | None = None  # ranking: isotonic map from score to counts

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, FeatureSet):
                object.__setattr__(self, field.name, frozen(value))

    @classmethod
    def from_dict(cls, saved):
        names = {f.name for f in fields(cls)}
        unknown = set(saved) - names
        if unknown:
            raise ValueError(f"label configuration has unknown keys {sorted(unknown)}")
        values = dict(saved)
        for key in ("markers", "audit_features"):
            if values.get(key):
                values[key] = FeatureSet.from_dict(values[key]["name"], values[key])
        return cls(**values)

    def to_dict(self):
        """Flat JSON; fields that do not apply are left out."""
        out = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, FeatureSet):
                out[field.name] = value.to_dict()
            elif value is not None:
                out[field.name] = thawed(value)
        return out

    def trained(self, **added):
        """A copy with what training adds (max_length, scale, class_weights, calibration)."""
        return replace(self, **added)
