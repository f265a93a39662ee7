"""The service's and proxy's configuration: one typed record, each key with its default and its help, from which
the command line (`python -m thinkcount serve --key-name VALUE`) is built and checked."""
import argparse
import os
import types
import typing
from dataclasses import dataclass, field, fields

from thinkcount import UserError

ADMIN_TOKEN_VARIABLE = "THINKCOUNT_ADMIN_TOKEN"


def opt(default, help, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class ServeConfig:
    model: str = opt(None, "a trained model folder, e.g. models/m13_rank (served first)")
    # Batching only once requests queue: on 2 CPU cores a padded batch of corpus prompts scores no faster per
    # prompt than one, and its requests all wait for its last prompt; short prompts of similar length do batch
    # well, and under a deep queue batching costs nothing (docs/serving.md).
    max_batch: int = opt(64, "prompts scored in one model call at most (1: each request scored alone)")
    batch_from: int = opt(8, "requests that must be waiting before they are scored together (1: always batch)")
    max_wait_ms: float = opt(0.0, "how long a batch waits for more requests after the first")
    batch_size: int = opt(16, "prompts per padded model batch inside a call, grouped by length")
    workers: int = opt(2, "batches scored at once, each on its share of the CPU cores")
    max_prompts: int = opt(256, "prompts one /score request may carry")
    max_body_bytes: int = opt(1 << 20, "largest request body")
    upstream: str | None = opt(None, "proxy /v1/chat/completions and /v1/completions to this engine URL")
    reasoning_upstream: str | None = opt(None, "engine URL for requests predicted at or above --threshold")
    threshold: float | None = opt(None, "expected counts that send a request to --reasoning-upstream")
    aging_seconds: float = opt(1.0, "one priority level is added per this many seconds since the start")
    tokens_per_count: float | None = opt(None, "cap max_tokens at this many tokens per expected count")
    model_map: str | None = opt(None, "JSON or YAML file: served model name -> the training name a model-aware "
                                      "model knows it by")
    fallback_model: str | None = opt(None, "a prompt-only model folder for requests whose model the model-aware "
                                           "one does not know (without it they go on unscored)")
    # Reasoning engines may think for minutes before a non-streamed answer's first byte: an idle limit, not a total.
    upstream_timeout: float = opt(600.0, "seconds the engine may send nothing, before its first byte or between "
                                         "two chunks")
    connect_timeout: float = opt(10.0, "seconds to open a connection to the engine")
    score_budget_ms: float = opt(500.0, "longest a proxied request waits for its score before it goes on unscored")
    fail_closed: bool = opt(False, "answer 503 when a request cannot be scored, instead of sending it on unscored")
    neutral_priority: int = opt(30, "the priority level of an unscored request (that of 20 expected counts)")
    admin_token: str | None = opt(None, f"bearer token for /reload and /head (or {ADMIN_TOKEN_VARIABLE}, which keeps "
                                        "it out of ps); none: only clients on this machine may use them")
    max_connections: int = opt(1000, "open client connections; more are answered 503 with Retry-After")
    header_timeout: float = opt(10.0, "seconds a client has to send a request's headers")
    body_timeout: float = opt(30.0, "seconds a client has to send a request's body")
    traffic_log: str | None = opt(None, "folder for the proxy's traffic log: one record per completed request")
    hash_prompts: bool = opt(False, "the traffic log keeps a hash of each prompt and no text (drift, not retraining)")
    counts_params: str = opt("params.yaml", "the params file whose counts.keywords the traffic log counts with")
    drift_window: int = opt(200, "completed requests per model behind /metrics' window tau")
    drift_threshold: float = opt(0.1, "a full drift window's tau below this triggers a refit")
    abnormal_quantile: str = opt("p99", "an answer whose counts pass this quantile of the model's validation "
                                        "residuals is flagged abnormal", choices=("p90", "p95", "p99"))
    adapt_every: int | None = opt(None, "refit a head from the traffic log after this many logged requests")
    adapt_interval: float | None = opt(None, "refit a head from the traffic log every this many seconds")
    adapt_window: int = opt(5000, "newest log records a refit reads")
    adapt_margin: float = opt(0.0, "tau a challenger must gain over the serving head on the newest requests")
    adapt_timeout: float = opt(300.0, "seconds a refit may take; a longer one is abandoned (the head stays)")
    adapt_dir: str = opt("models/online", "where challengers that won are written")


def value_type(annotation):
    """int for `int | None`, and so on."""
    if isinstance(annotation, types.UnionType):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def build_parser(description):
    parser = argparse.ArgumentParser(prog="python -m thinkcount serve", description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    hints = typing.get_type_hints(ServeConfig)
    for key in fields(ServeConfig):
        flag, kind = "--" + key.name.replace("_", "-"), value_type(hints[key.name])
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=key.metadata["help"])
            continue
        default = os.environ.get(ADMIN_TOKEN_VARIABLE) if key.name == "admin_token" else key.default
        parser.add_argument(flag, type=kind, default=default, required=key.name == "model",
                            choices=key.metadata.get("choices"), help=key.metadata["help"])
    return parser


def checks(a):
    """(failed, the sentence) for every rule the options must keep."""
    above_zero = ("aging_seconds", "upstream_timeout", "connect_timeout", "score_budget_ms", "header_timeout",
                  "body_timeout", "adapt_timeout")
    at_least = {"max_batch": 1, "batch_size": 1, "batch_from": 1, "workers": 1, "max_prompts": 1,
                "max_connections": 1, "drift_window": 10, "adapt_window": 50}
    return [*[(getattr(a, k) <= 0, f"--{k.replace('_', '-')} must be above 0") for k in above_zero],
            *[(getattr(a, k) < n, f"--{k.replace('_', '-')} must be at least {n}") for k, n in at_least.items()],
            (a.max_wait_ms < 0, "--max-wait-ms must be 0 or more"),
            (bool(a.reasoning_upstream) != (a.threshold is not None),
             "--reasoning-upstream and --threshold go together"),
            (bool(a.reasoning_upstream) and not a.upstream, "--reasoning-upstream needs --upstream"),
            (a.tokens_per_count is not None and a.tokens_per_count <= 0, "--tokens-per-count must be above 0"),
            (a.traffic_log is not None and not a.upstream, "--traffic-log needs --upstream"),
            ((a.adapt_every or a.adapt_interval) and not a.traffic_log,
             "--adapt-every and --adapt-interval need --traffic-log"),
            (a.adapt_every is not None and a.adapt_every < 1, "--adapt-every must be at least 1"),
            (a.adapt_interval is not None and a.adapt_interval <= 0, "--adapt-interval must be above 0"),
            (a.admin_token is not None and not a.admin_token.strip(), "--admin-token must not be empty")]


def parse_args(argv, description=None):
    """(ServeConfig, host, port) from the command line, or one sentence naming the first bad option."""
    args = build_parser(description).parse_args(argv)
    for failed, message in checks(args):
        if failed:
            raise UserError(message + ".")
    values = vars(args)
    host, port = values.pop("host"), values.pop("port")
    return ServeConfig(**values), host, port
