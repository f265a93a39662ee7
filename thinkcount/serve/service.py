"""A scoring service for a trained model, and with --upstream a priority proxy in front of an LLM engine.

    python -m thinkcount serve --model models/m13_rank [--host 127.0.0.1] [--port 8000]
    python -m thinkcount serve --model models/m13_rank --upstream http://127.0.0.1:8001   # vLLM behind it

POST /score {"prompts": ["...", {"instruction": "...", "input": "..."}]} returns Predictor.predict's numbers;
GET /healthz; GET /metrics (Prometheus text); POST /reload {"model": "DIR"} swaps the model without a restart.
With --upstream, /v1/chat/completions and /v1/completions are scored and forwarded (thinkcount/serve/proxy.py).
/reload changes what is served, so it needs --admin-token (or THINKCOUNT_ADMIN_TOKEN) as a bearer token; with no
token configured it answers only clients on this machine. Connections are capped (--max-connections; over it, 503
with Retry-After) and so is the time a client may take to send its headers and body (thinkcount/serve/connections.py).
A request is scored as it comes while few wait; once --batch-from of them queue, they are scored together
(thinkcount/serve/batcher.py); --workers batches are scored at once, sharing one model. SIGTERM drains the
requests in flight and exits 0. Starlette and uvicorn serve it: a small, well-kept ASGI stack whose requests
we validate ourselves, so that every bad request gets one sentence.
"""
import argparse
import asyncio
import hmac
import json
import math
import os
import signal
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import httpx
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from thinkcount import UserError
from thinkcount.data.counting import prompt_text, rules_from_params
from thinkcount.methods import modelfolder
from thinkcount.methods.modelfolder import RESIDUALS
from thinkcount.serve import proxy
from thinkcount.serve.batcher import MicroBatcher
from thinkcount.serve.connections import bounded_protocol
from thinkcount.serve.drift import DriftWindows
from thinkcount.serve.naming import ModelNames, read_model_map, training_names
from thinkcount.serve.online import OnlineAdapter, OnlineSettings
from thinkcount.serve.traffic import LogSettings, TrafficLog
from thinkcount.serve.web import BadRequest, from_loopback, parse_json_body, read_body

ADMIN_TOKEN_VARIABLE = "THINKCOUNT_ADMIN_TOKEN"


@dataclass(frozen=True)
class ServeConfig:
    model: str                       # the model folder served first
    max_batch: int = 64              # prompts scored in one call at most; 1: each request alone
    batch_from: int = 8              # requests waiting before they are batched; fewer are scored one at a time
    max_wait_ms: float = 0.0         # how long a batch waits for more requests after the first
    batch_size: int = 16             # prompts per padded model batch inside a call (grouped by length)
    workers: int = 2                 # batches scored at once, each on its share of the cores
    max_prompts: int = 256           # prompts one request may carry
    max_body_bytes: int = 1 << 20    # largest request body
    upstream: str | None = None      # the engine requests are forwarded to (enables the proxy)
    reasoning_upstream: str | None = None  # the engine for requests predicted long (with threshold)
    threshold: float | None = None   # expected counts at or above which a request goes to reasoning_upstream
    aging_seconds: float = 1.0       # one priority level is added per this many seconds since the start
    tokens_per_count: float | None = None  # cap max_tokens at this many tokens per expected count
    model_map: str | None = None     # JSON/YAML file: served model name -> the model-aware predictor's training name
    fallback_model: str | None = None  # a prompt-only model folder for names the model-aware one does not know
    # Reasoning engines may think for minutes before a non-streamed answer's first byte: an idle limit, not a total.
    upstream_timeout: float = 600.0  # seconds the engine may send nothing, before its first byte or between chunks
    connect_timeout: float = 10.0    # seconds to open a connection to the engine
    score_budget_ms: float = 500.0   # longest a proxied request waits for its score before it goes on unscored
    fail_closed: bool = False        # a request that cannot be scored gets 503 instead of a neutral priority
    neutral_priority: int = 30       # the priority level of an unscored request (that of 20 expected counts)
    admin_token: str | None = None   # bearer token for /reload; none: only clients on this machine may reload
    max_connections: int = 1000      # open client connections; more are answered 503 with Retry-After
    header_timeout: float = 10.0     # seconds a client has to send a request's headers
    body_timeout: float = 30.0       # seconds a client has to send a request's body
    traffic_log: str | None = None   # folder of the proxy's traffic log (one record per completed request)
    hash_prompts: bool = False       # the log keeps a hash of each prompt and no text (drift, not retraining)
    counts_params: str = "params.yaml"  # the params file whose counts.keywords the log counts with
    drift_window: int = 200          # completed requests per model behind /metrics' window tau
    abnormal_quantile: str = "p99"   # an answer past this quantile of the model's validation residuals is abnormal
    adapt_every: int | None = None   # refit a head from the traffic log after this many logged requests ...
    adapt_interval: float | None = None  # ... or this many seconds (thinkcount/serve/online.py)
    adapt_window: int = 5000         # newest log records a refit reads
    adapt_margin: float = 0.0        # tau a challenger must gain over the serving head on the newest requests
    adapt_timeout: float = 300.0     # a refit running longer is abandoned; the serving head stays
    adapt_dir: str = "models/online"  # where challengers that won are written
    drift_threshold: float = 0.1     # a window tau below this (over a full window) triggers a refit


def prompts_of(request, max_prompts):
    """The prompt texts of a /score request: strings, or objects with instruction and optional input."""
    unknown = sorted(set(request) - {"prompts", "model"})
    if unknown:
        raise BadRequest(400, f"unknown key {unknown[0]!r}; send {{\"prompts\": [...]}} and, for a model-aware "
                         "model, \"model\".")
    prompts = request.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise BadRequest(400, "`prompts` must be a non-empty list of strings or {instruction, input} objects.")
    if len(prompts) > max_prompts:
        raise BadRequest(413, f"{len(prompts)} prompts in one request; at most {max_prompts}.")
    return [prompt_of_item(item, i) for i, item in enumerate(prompts)]


def prompt_of_item(item, i):
    if isinstance(item, dict) and set(item) <= {"instruction", "input"}:
        instruction, input_text = item.get("instruction"), item.get("input") or ""
        if isinstance(instruction, str) and instruction.strip() and isinstance(input_text, str):
            return prompt_text(instruction, input_text)
    elif isinstance(item, str) and item.strip():
        return item
    raise BadRequest(400, f"prompt {i} is empty, not a string, or not an {{instruction, input}} object of strings.")


class ModelSlot:
    """The model being served and the names it knows; a reload swaps both only once the new model has loaded."""

    def __init__(self, folder, batch_size, workers=1, model_map=None, pooled_only=False):
        self.batch_size, self.workers, self.pooled_only = batch_size, workers, pooled_only
        self.mapping = MappingProxyType(read_model_map(model_map))
        self.lock = asyncio.Lock()
        self.predictors, self.names, self.folder, self.version = self.load(folder)

    def load(self, folder):
        """One predictor per worker, sharing one model; ONNX Runtime's threads split the cores between them:
        two one-thread calls at once outscored one two-thread call on 2 cores (docs/serving.md)."""
        from thinkcount.serve.predict import Predictor  # torch and transformers: only once the service starts
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        predictor = Predictor.load(folder, device="cpu", threads=threads)
        aware = bool(predictor.config.model_token)
        if aware and self.pooled_only:
            raise UserError(f"{folder}: the fallback model must read the prompt alone, but it is model-aware "
                            "(model_token).")
        names = ModelNames(aware, training_names(folder) if aware else None, self.mapping)
        predictors = [predictor] + [predictor.replica() for _ in range(self.workers - 1)]
        return predictors, names, str(folder), modelfolder.version(folder)

    def score(self, items, worker=0):
        """Results for (prompt, training name or None) items."""
        predictor = self.predictors[worker]  # a batch in flight keeps the model it started with
        prompts = [prompt for prompt, _ in items]
        models = [name for _, name in items] if predictor.config.model_token else None
        return predictor.predict(prompts, self.batch_size, model=models)

    async def reload(self, folder):
        async with self.lock:
            self.predictors, self.names, self.folder, self.version = await asyncio.to_thread(self.load, folder)


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("thinkcount_requests", "Requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)
        self.prompts = Counter("thinkcount_prompts", "Prompts scored", registry=self.registry)
        self.batch = Histogram("thinkcount_batch_size", "Prompts per model call", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.latency = Histogram("thinkcount_request_seconds", "Request latency by endpoint", ["endpoint"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.in_flight = Gauge("thinkcount_requests_in_flight", "Requests being answered, by endpoint", ["endpoint"],
                               registry=self.registry)
        self.model = Gauge("thinkcount_model_info", "The model being served (value 1)", ["folder", "version"],
                           registry=self.registry)
        self.score_unavailable = Counter("thinkcount_score_unavailable", "Proxied requests sent on unscored, by "
                                         "reason (error, timeout)", ["reason"], registry=self.registry)
        self.upstream_failures = Counter("thinkcount_upstream_failures", "Engine failures by kind (connect_error, "
                                         "connect_timeout, first_byte_timeout, stall_mid_stream, reset, bad_body, "
                                         "status_5xx, client_gone)", ["kind"], registry=self.registry)
        self.clients_refused = Counter("thinkcount_clients_refused", "Connections turned away or cut, by reason "
                                       "(max_connections, slow_headers)", ["reason"], registry=self.registry)
        self.logged = Counter("thinkcount_traffic_log_records", "Records written to the traffic log",
                              registry=self.registry)
        self.log_dropped = Counter("thinkcount_traffic_log_dropped", "Records dropped: the log's queue was full",
                                   registry=self.registry)
        self.window_tau = Gauge("thinkcount_window_tau", "Kendall tau-b of expected against realised counts over "
                                "the last --drift-window completed requests (NaN: undefined)", ["model"],
                                registry=self.registry)
        self.window_ratio = Gauge("thinkcount_window_ratio_median", "Median realised / expected counts over the "
                                  "same window", ["model"], registry=self.registry)
        self.window_requests = Gauge("thinkcount_window_requests", "Requests in the drift window", ["model"],
                                     registry=self.registry)
        self.abnormal = Counter("thinkcount_abnormal_answers", "Answers whose counts passed the abnormal "
                                "threshold for their prediction", ["model"], registry=self.registry)

        self.refits = Counter("thinkcount_refits", "Online refits by decision (swap, refused, too_few, timeout, "
                              "failed, busy)", ["decision"], registry=self.registry)
        self.rollbacks = Counter("thinkcount_head_rollbacks", "Rollbacks to the previous head", registry=self.registry)
        self.head_tau = Gauge("thinkcount_head_tau", "Kendall tau of the serving head (champion) and of the last "
                              "challenger on the last refit's held-out newest requests", ["role"],
                              registry=self.registry)

    def watch_head(self, adapter):
        """The serving head's age and the traces it was fitted on, read at each scrape."""
        Gauge("thinkcount_head_age_seconds", "Seconds since the serving head was swapped in", registry=self.registry,
              ).set_function(lambda: time.time() - adapter.serving_since)
        Gauge("thinkcount_head_traces", "Traces the serving head was fitted on (0: the base model)",
              registry=self.registry).set_function(lambda: adapter.serving_traces)

    def refitted(self, result):
        self.refits.labels(decision=result["decision"]).inc()
        for role in ("champion", "challenger"):
            if f"{role}_tau" in result:
                value = result[f"{role}_tau"]
                self.head_tau.labels(role=role).set(float("nan") if value is None else value)

    def logged_record(self, record, windows):
        """Count a traffic-log record and update its model's drift window (in the log's writer thread); returns
        the window's figures when the record counted toward one."""
        self.logged.inc()
        if record.get("abnormal"):
            self.abnormal.labels(model=record.get("model") or "").inc()
        figures = windows.add(record)
        if not figures:
            return None
        model, values = figures
        self.window_tau.labels(model=model).set(float("nan") if values["tau"] is None else values["tau"])
        self.window_ratio.labels(model=model).set(values["median_ratio"])
        self.window_requests.labels(model=model).set(values["requests"])
        return values

    def serving(self, slot):
        self.model.clear()
        self.model.labels(folder=slot.folder, version=slot.version).set(1)


def endpoint(name, metrics):
    """Wrap a handler: BadRequest and UserError become a JSON error of one sentence; count and time it."""
    def wrap(handler):
        async def route(request):
            start = time.perf_counter()
            try:
                with metrics.in_flight.labels(endpoint=name).track_inprogress():
                    response = await handler(request)
            except BadRequest as e:
                response = JSONResponse({"error": str(e)}, status_code=e.status, headers=e.headers)
            except UserError as e:
                response = JSONResponse({"error": str(e)}, status_code=422)
            except Exception as e:  # noqa: BLE001 - a failure answers this request; the process stays up
                response = JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"}, status_code=500)
            metrics.requests.labels(endpoint=name, status=str(response.status_code)).inc()
            metrics.latency.labels(endpoint=name).observe(time.perf_counter() - start)
            return response
        return route
    return wrap


def create_app(config, slot=None):
    """The ASGI app; slot (a loaded ModelSlot) may be given by tests and benchmarks."""
    metrics = Metrics()
    state = {}

    @asynccontextmanager
    async def lifespan(app):
        state["slot"] = slot or await asyncio.to_thread(ModelSlot, config.model, config.batch_size, config.workers,
                                                        config.model_map)
        metrics.serving(state["slot"])
        batcher = MicroBatcher(state["slot"].score, config.max_batch, config.max_wait_ms / 1000, config.batch_from,
                               on_batch=metrics.batch.observe, workers=state["slot"].workers)
        state["batcher"] = batcher
        batcher.start()
        if config.fallback_model:
            fallback = await asyncio.to_thread(ModelSlot, config.fallback_model, config.batch_size, 1,
                                               pooled_only=True)
            state["fallback"] = MicroBatcher(fallback.score, config.max_batch, config.max_wait_ms / 1000,
                                             config.batch_from, on_batch=metrics.batch.observe)
            state["fallback"].start()
        timeout = httpx.Timeout(config.upstream_timeout, connect=config.connect_timeout)
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=64)
        if config.traffic_log:
            state["traffic"] = traffic_log(config, state["slot"].folder, metrics, state)
            state["traffic"].start()
        if config.adapt_every or config.adapt_interval:
            state["adapter"] = online_adapter(config)
            metrics.watch_head(state["adapter"])
            state["adapting"] = asyncio.create_task(adapt_loop(config, state, metrics))
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            state["client"] = client
            state["started"] = time.monotonic()
            yield
        if "adapting" in state:
            state["adapting"].cancel()
        await batcher.stop()
        if "fallback" in state:
            await state["fallback"].stop()
        if "traffic" in state:
            await asyncio.to_thread(state["traffic"].stop)

    async def score_items(items, batcher="batcher"):
        results = await state[batcher].submit(items)
        metrics.prompts.inc(len(items))
        return results

    async def score_request(prompt, served):
        """(result, the x-thinkcount-model label) of one proxied prompt: the model under the request's training
        name, the fallback model for a name it does not know, or (None, "unknown")."""
        name, label = state["slot"].names.resolve(served)
        if label is not None:
            return (await score_items([(prompt, name)]))[0], label
        if "fallback" in state:
            return (await score_items([(prompt, None)], "fallback"))[0], "fallback"
        return None, "unknown"

    @endpoint("score", metrics)
    async def score(request):
        body = parse_json_body(await read_body(request, config.max_body_bytes, config.body_timeout))
        prompts = prompts_of(body, config.max_prompts)
        name, label = state["slot"].names.resolve(body.get("model"))
        if label is None:
            raise BadRequest(422, f"the model {body.get('model')!r} is not one the served model-aware model knows "
                             "(map it with --model-map, or score it with --fallback-model through the proxy).")
        results = await score_items([(p, name) for p in prompts])
        return JSONResponse({"model": state["slot"].version, "answering_model": label, "results": results})

    @endpoint("healthz", metrics)
    async def healthz(request):
        slot = state["slot"]
        return JSONResponse({"status": "ok", "model": slot.folder, "version": slot.version})

    async def metrics_text(request):
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @endpoint("reload", metrics)
    async def reload(request):
        check_admin(request, config.admin_token)
        body = await read_body(request, config.max_body_bytes, config.body_timeout)
        folder = parse_json_body(body).get("model", state["slot"].folder) if body.strip() else state["slot"].folder
        if not isinstance(folder, str):
            raise BadRequest(400, "`model` must be a model folder path.")
        await state["slot"].reload(folder)  # a folder that fails to load raises UserError: the old one serves on
        metrics.serving(state["slot"])
        return JSONResponse({"status": "reloaded", "model": state["slot"].folder, "version": state["slot"].version})

    @endpoint("head", metrics)
    async def head(request):
        """Pin the serving head (no swaps), unpin it, or roll back to the head served before it."""
        check_admin(request, config.admin_token)
        adapter = state.get("adapter")
        if adapter is None:
            raise BadRequest(409, "online adaptation is off; start the proxy with --adapt-every or --adapt-interval.")
        action = parse_json_body(await read_body(request, config.max_body_bytes, config.body_timeout)).get("action")
        if action in ("pin", "unpin"):
            adapter.pinned = action == "pin"
        elif action == "rollback":
            previous = adapter.previous()
            if previous is None:
                raise BadRequest(409, "there is no earlier head to roll back to.")
            await state["slot"].reload(previous)
            adapter.rolled_back()
            metrics.serving(state["slot"])
            metrics.rollbacks.inc()
        else:
            raise BadRequest(400, "`action` must be pin, unpin or rollback.")
        return JSONResponse({"pinned": adapter.pinned, "model": state["slot"].folder, "version": state["slot"].version})

    routes = [Route("/score", score, methods=["POST"]), Route("/healthz", healthz, methods=["GET"]),
              Route("/metrics", metrics_text, methods=["GET"]), Route("/reload", reload, methods=["POST"]),
              Route("/head", head, methods=["POST"])]
    if config.upstream:
        for path in proxy.PATHS:
            route = proxy.handler(path, config, state, score_request, metrics)
            routes.append(Route(path, endpoint("proxy", metrics)(route), methods=["POST"]))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics = metrics
    return app


def traffic_log(config, model_folder, metrics, state):
    """The traffic log, counting with the params file's keywords and flagging answers past the model's residual
    quantile (abnormal_ratio); each record written counts toward the next refit, and a full drift window below
    the drift threshold raises the alarm that triggers one."""
    keywords, case_sensitive = rules_from_params(config.counts_params)
    settings = LogSettings(config.traffic_log, tuple(keywords), case_sensitive, keep_prompts=not config.hash_prompts)
    windows = DriftWindows(config.drift_window)
    state["logged"], state["drift_alarm"] = 0, False

    def on_record(record):
        state["logged"] += 1
        figures = metrics.logged_record(record, windows)
        if figures and figures["requests"] >= config.drift_window and figures["tau"] is not None \
                and figures["tau"] < config.drift_threshold:
            state["drift_alarm"] = True
    return TrafficLog(settings, abnormal_ratio(model_folder, config.abnormal_quantile), on_record=on_record,
                      on_drop=metrics.log_dropped.inc)


def online_adapter(config):
    settings = OnlineSettings(config.adapt_every, config.adapt_interval, config.adapt_window,
                              margin=config.adapt_margin, timeout=config.adapt_timeout)
    return OnlineAdapter(config.model, config.traffic_log, config.adapt_dir, settings,
                         *rules_from_params(config.counts_params))


async def adapt_loop(config, state, metrics):
    """Refit when due (every N logged requests, every S seconds, or on the drift alarm), off the request path; a
    challenger that wins is swapped in as the serving head."""
    adapter, last_time, last_count = state["adapter"], time.monotonic(), 0
    while True:
        await asyncio.sleep(0.5)
        due = (config.adapt_every and state["logged"] - last_count >= config.adapt_every) \
            or (config.adapt_interval and time.monotonic() - last_time >= config.adapt_interval) or state["drift_alarm"]
        if not due or adapter.pinned:
            continue
        last_time, last_count, state["drift_alarm"] = time.monotonic(), state["logged"], False
        champion = state["slot"].predictors[0].replica()  # a tokenizer of its own: the workers keep theirs
        try:
            result = await asyncio.wait_for(asyncio.to_thread(adapter.refit, champion), config.adapt_timeout)
        except TimeoutError:
            result = {"decision": "timeout"}
        except Exception as e:  # noqa: BLE001 - a refit that fails leaves the serving head as it is
            print(f"warning: refit failed ({type(e).__name__}: {e}); the serving head stays.")
            result = {"decision": "failed"}
        metrics.refitted(result)
        if result["decision"] == "swap":
            await state["slot"].reload(result["folder"])
            adapter.swapped(result["folder"], result["train_traces"])
            metrics.serving(state["slot"])


def abnormal_ratio(folder, quantile):
    """exp of the model's validation residual quantile (log realised / expected counts), from residuals.json;
    None when the folder has none (answers are then not flagged)."""
    path = Path(folder) / RESIDUALS
    if not path.is_file():
        print(f"warning: {folder} has no {RESIDUALS}; answers will not be flagged abnormal (retrain to add it).")
        return None
    quantiles = json.loads(path.read_text())["log_ratio_quantiles"]
    if quantile not in quantiles:
        raise UserError(f"--abnormal-quantile {quantile}: {path} has {', '.join(quantiles)}.")
    return math.exp(quantiles[quantile])


def check_admin(request, token):
    """A route that changes what is served needs the admin token; with none configured, a client on this machine."""
    if token is None:
        if not from_loopback(request):
            raise BadRequest(401, f"admin routes answer only this machine unless --admin-token "
                             f"(or {ADMIN_TOKEN_VARIABLE}) is set.")
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise BadRequest(401, "a missing or wrong admin token; send Authorization: Bearer TOKEN.",
                         headers={"www-authenticate": "Bearer"})


def server(app, config, host, port):
    """The uvicorn server for app, with the connection cap and header deadline; SIGTERM drains what is in flight
    for up to 30 s (a stream longer than that is cut)."""
    metrics = app.state.metrics
    protocol = bounded_protocol(config.max_connections, config.header_timeout,
                                on_refused=metrics.clients_refused.labels(reason="max_connections").inc,
                                on_slow=metrics.clients_refused.labels(reason="slow_headers").inc)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", http=protocol,
                                         timeout_graceful_shutdown=30))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m thinkcount serve", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a trained model folder, e.g. models/m13_rank")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    # Batching only once requests queue: on 2 CPU cores a padded batch of corpus prompts scores no faster per
    # prompt than one, and its requests all wait for its last prompt; short prompts of similar length do batch
    # well, and under a deep queue batching costs nothing (docs/serving.md).
    parser.add_argument("--max-batch", type=int, default=ServeConfig.max_batch,
                        help="prompts scored in one model call at most (1: each request scored alone)")
    parser.add_argument("--batch-from", type=int, default=ServeConfig.batch_from,
                        help="requests that must be waiting before they are scored together (1: always batch)")
    parser.add_argument("--max-wait-ms", type=float, default=ServeConfig.max_wait_ms,
                        help="how long a batch waits for more requests")
    parser.add_argument("--batch-size", type=int, default=ServeConfig.batch_size,
                        help="prompts per padded batch, grouped by length")
    parser.add_argument("--workers", type=int, default=ServeConfig.workers,
                        help="batches scored at once, each on its share of the CPU cores")
    parser.add_argument("--max-prompts", type=int, default=ServeConfig.max_prompts,
                        help="prompts one request may carry")
    parser.add_argument("--max-body-bytes", type=int, default=ServeConfig.max_body_bytes)
    parser.add_argument("--upstream", help="proxy /v1/chat/completions and /v1/completions to this engine URL")
    parser.add_argument("--reasoning-upstream", help="engine URL for requests predicted at or above --threshold")
    parser.add_argument("--threshold", type=float, help="expected counts that send a request to --reasoning-upstream")
    parser.add_argument("--aging-seconds", type=float, default=ServeConfig.aging_seconds,
                        help="one priority level is added per this many seconds since the start (no starvation)")
    parser.add_argument("--tokens-per-count", type=float, help="cap max_tokens at this many per expected count")
    parser.add_argument("--model-map", help="JSON or YAML file: served model name -> the training name a model-aware "
                                             "model knows it by")
    parser.add_argument("--fallback-model", help="a prompt-only model folder for requests whose model the model-aware "
                                                 "one does not know (without it they go on unscored)")
    parser.add_argument("--upstream-timeout", type=float, default=ServeConfig.upstream_timeout,
                        help="seconds the engine may send nothing, before its first byte or between two chunks")
    parser.add_argument("--connect-timeout", type=float, default=ServeConfig.connect_timeout)
    parser.add_argument("--score-budget-ms", type=float, default=ServeConfig.score_budget_ms,
                        help="longest a proxied request waits for its score; then it goes on at --neutral-priority")
    parser.add_argument("--fail-closed", action="store_true",
                        help="answer 503 when a request cannot be scored, instead of sending it on unscored")
    parser.add_argument("--neutral-priority", type=int, default=ServeConfig.neutral_priority,
                        help="the priority level of a request that could not be scored")
    parser.add_argument("--admin-token", default=os.environ.get(ADMIN_TOKEN_VARIABLE),
                        help=f"bearer token for /reload (or {ADMIN_TOKEN_VARIABLE}; the variable keeps it out of ps)")
    parser.add_argument("--max-connections", type=int, default=ServeConfig.max_connections,
                        help="open client connections; more are answered 503 with Retry-After")
    parser.add_argument("--header-timeout", type=float, default=ServeConfig.header_timeout,
                        help="seconds a client has to send a request's headers")
    parser.add_argument("--body-timeout", type=float, default=ServeConfig.body_timeout,
                        help="seconds a client has to send a request's body")
    parser.add_argument("--traffic-log", help="folder for the proxy's traffic log: one record per completed request")
    parser.add_argument("--hash-prompts", action="store_true",
                        help="the traffic log keeps a hash of each prompt and no text (drift, not retraining)")
    parser.add_argument("--counts-params", default=ServeConfig.counts_params,
                        help="the params file whose counts.keywords the traffic log counts with")
    parser.add_argument("--drift-window", type=int, default=ServeConfig.drift_window,
                        help="completed requests per model behind /metrics' window tau")
    parser.add_argument("--adapt-every", type=int, help="refit a head from the traffic log after this many requests")
    parser.add_argument("--adapt-interval", type=float, help="refit a head from the traffic log every this many s")
    parser.add_argument("--adapt-window", type=int, default=ServeConfig.adapt_window,
                        help="newest log records a refit reads")
    parser.add_argument("--adapt-margin", type=float, default=ServeConfig.adapt_margin,
                        help="tau a challenger must gain over the serving head on the newest requests to replace it")
    parser.add_argument("--adapt-timeout", type=float, default=ServeConfig.adapt_timeout,
                        help="seconds a refit may take; a longer one is abandoned")
    parser.add_argument("--adapt-dir", default=ServeConfig.adapt_dir, help="where winning challengers are written")
    parser.add_argument("--drift-threshold", type=float, default=ServeConfig.drift_threshold,
                        help="a full drift window's tau below this triggers a refit")
    parser.add_argument("--abnormal-quantile", default=ServeConfig.abnormal_quantile, choices=["p90", "p95", "p99"],
                        help="an answer whose counts pass this quantile of the model's validation residuals is "
                             "flagged abnormal")
    args = parser.parse_args(argv)
    checks = [(args.max_batch < 1, "--max-batch must be at least 1"), (args.batch_size < 1, "--batch-size must be "
              "at least 1"), (args.max_wait_ms < 0, "--max-wait-ms must be 0 or more"),
              (args.batch_from < 1, "--batch-from must be at least 1"), (args.workers < 1, "--workers must be at "
              "least 1"),
              (args.max_prompts < 1, "--max-prompts must be at least 1"),
              (args.aging_seconds <= 0, "--aging-seconds must be above 0"),
              (bool(args.reasoning_upstream) != (args.threshold is not None),
               "--reasoning-upstream and --threshold go together"),
              (bool(args.reasoning_upstream) and not args.upstream, "--reasoning-upstream needs --upstream"),
              (args.tokens_per_count is not None and args.tokens_per_count <= 0, "--tokens-per-count must be above 0"),
              *[(getattr(args, name.replace("-", "_")) <= 0, f"--{name} must be above 0") for name in
                ("upstream-timeout", "connect-timeout", "score-budget-ms", "header-timeout", "body-timeout")],
              (args.max_connections < 1, "--max-connections must be at least 1"),
              (args.traffic_log is not None and not args.upstream, "--traffic-log needs --upstream"),
              (args.drift_window < 10, "--drift-window must be at least 10"),
              ((args.adapt_every or args.adapt_interval) and not args.traffic_log,
               "--adapt-every and --adapt-interval need --traffic-log"),
              (args.adapt_every is not None and args.adapt_every < 1, "--adapt-every must be at least 1"),
              (args.adapt_interval is not None and args.adapt_interval <= 0, "--adapt-interval must be above 0"),
              (args.adapt_window < 50, "--adapt-window must be at least 50"),
              (args.adapt_timeout <= 0, "--adapt-timeout must be above 0"),
              (args.admin_token is not None and not args.admin_token.strip(), "--admin-token must not be empty")]
    for failed, message in checks:
        if failed:
            raise UserError(message + ".")
    return args


def main(argv=None):
    run(parse_args(argv))


def run(args):
    config = ServeConfig(**{k: v for k, v in vars(args).items() if k not in ("host", "port")})
    # A bad folder or model map stops here, before the port opens.
    slot = ModelSlot(config.model, config.batch_size, config.workers, config.model_map)
    if config.traffic_log:
        rules_from_params(config.counts_params)  # as does a params file the log cannot count with
    # uvicorn drains the requests in flight on SIGTERM, then raises the signal again: this handler takes it,
    # so a drained shutdown exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server(create_app(config, slot), config, args.host, args.port).run()
