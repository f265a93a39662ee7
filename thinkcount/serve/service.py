"""A scoring service for a trained model, and with --upstream a priority proxy in front of an LLM engine.

    python -m thinkcount serve --model models/m13_rank [--host 127.0.0.1] [--port 8000]
    python -m thinkcount serve --model models/m13_rank --upstream http://127.0.0.1:8001   # vLLM behind it

POST /score {"prompts": ["...", {"instruction": "...", "input": "..."}]} returns Predictor.predict's numbers;
GET /healthz; GET /metrics (Prometheus text); POST /reload {"model": "DIR"} swaps the model without a restart.
With --upstream, /v1/chat/completions and /v1/completions are scored and forwarded (thinkcount/serve/proxy.py),
with the request's model for a model-aware predictor (thinkcount/serve/naming.py); --traffic-log writes one record
per request (thinkcount/serve/traffic.py), behind /metrics' drift figures (drift.py) and the refits of
--adapt-every (online.py). /reload and /head (pin, unpin, rollback) change what is served, so they need
--admin-token (or THINKCOUNT_ADMIN_TOKEN) as a bearer token; with no token configured they answer only clients on
this machine. Connections are capped (--max-connections; over it, 503 with Retry-After) and so is the time a
client may take to send its headers and body (thinkcount/serve/connections.py). Options: thinkcount/serve/options.py.
A request is scored as it comes while few wait; once --batch-from of them queue, they are scored together
(thinkcount/serve/batcher.py); --workers batches are scored at once, sharing one model. SIGTERM drains the
requests in flight and exits 0. Starlette and uvicorn serve it: a small, well-kept ASGI stack whose requests
we validate ourselves, so that every bad request gets one sentence.
"""
import asyncio
import hmac
import json
import math
import os
import signal
import time
from contextlib import asynccontextmanager
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
from thinkcount.serve.options import ADMIN_TOKEN_VARIABLE, parse_args
from thinkcount.serve.traffic import LogSettings, TrafficLog
from thinkcount.serve.web import BadRequest, from_loopback, parse_json_body, read_body



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
        await start(config, state, metrics)
        timeout = httpx.Timeout(config.upstream_timeout, connect=config.connect_timeout)
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            state["client"] = client
            state["started"] = time.monotonic()
            yield
        await stop(state)

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
        action = parse_json_body(await read_body(request, config.max_body_bytes, config.body_timeout)).get("action")
        return JSONResponse(await head_action(action, state, metrics))

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


async def start(config, state, metrics):
    """Everything that serves beside the model: its batcher, the fallback model's, the traffic log, the refits."""
    metrics.serving(state["slot"])
    state["batcher"] = MicroBatcher(state["slot"].score, config.max_batch, config.max_wait_ms / 1000,
                                    config.batch_from, on_batch=metrics.batch.observe, workers=state["slot"].workers)
    state["batcher"].start()
    if config.fallback_model:
        fallback = await asyncio.to_thread(ModelSlot, config.fallback_model, config.batch_size, 1, pooled_only=True)
        state["fallback"] = MicroBatcher(fallback.score, config.max_batch, config.max_wait_ms / 1000,
                                         config.batch_from, on_batch=metrics.batch.observe)
        state["fallback"].start()
    if config.traffic_log:
        state["traffic"] = traffic_log(config, state["slot"].folder, metrics, state)
        state["traffic"].start()
    if config.adapt_every or config.adapt_interval:
        state["adapter"] = online_adapter(config)
        metrics.watch_head(state["adapter"])
        state["adapting"] = asyncio.create_task(adapt_loop(config, state, metrics))


async def stop(state):
    """Stop what start started; the traffic log writes what it holds first."""
    if "adapting" in state:
        state["adapting"].cancel()
    for batcher in ("batcher", "fallback"):
        if batcher in state:
            await state[batcher].stop()
    if "traffic" in state:
        await asyncio.to_thread(state["traffic"].stop)


async def head_action(action, state, metrics):
    """Pin the serving head (no swaps), unpin it, or roll back to the head served before it."""
    adapter = state.get("adapter")
    if adapter is None:
        raise BadRequest(409, "online adaptation is off; start the proxy with --adapt-every or --adapt-interval.")
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
    return {"pinned": adapter.pinned, "model": state["slot"].folder, "version": state["slot"].version}


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
        if result["decision"] == "swap":
            try:
                await state["slot"].reload(result["folder"])
            except Exception as e:  # noqa: BLE001 - a head that fails to load leaves the serving one
                print(f"warning: the new head failed to load ({type(e).__name__}: {e}); the serving head stays.")
                result = {**result, "decision": "failed"}
            else:
                adapter.swapped(result["folder"], result["train_traces"])
                metrics.serving(state["slot"])
        metrics.refitted(result)  # a swap is counted once it serves


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


def main(argv=None):
    run(*parse_args(argv, __doc__.split("\n")[0]))


def run(config, host, port):
    # A bad folder or model map stops here, before the port opens.
    slot = ModelSlot(config.model, config.batch_size, config.workers, config.model_map)
    if config.traffic_log:
        rules_from_params(config.counts_params)  # as does a params file the log cannot count with
    # uvicorn drains the requests in flight on SIGTERM, then raises the signal again: this handler takes it,
    # so a drained shutdown exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server(create_app(config, slot), config, host, port).run()
