"""The proxy on a request path: a scripted engine on loopback fails in each way an engine can, and the proxy must
give the documented answer within its time-out plus a second, keep serving, and count each failure; a predictor
that raises or is slow never fails a request; slow and surplus clients are cut; /reload needs the admin token."""
import asyncio
import os
import signal
import socket
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from test_serve import free_port, in_thread, metric, service
from thinkcount.serve.naming import ModelNames
from thinkcount.serve.proxy import PATHS
from thinkcount.serve.options import ServeConfig
from thinkcount.serve.service import check_admin, create_app, server
from thinkcount.serve.web import BadRequest

pytestmark = pytest.mark.slow
IDLE = 1.0  # --upstream-timeout of the proxies under test
CHUNK = b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'


def fault_of(body):
    """The fault a request asks the scripted engine for: its prompt reads 'FAULT id'."""
    text = body.get("prompt") or body["messages"][-1]["content"]
    return text.split()[0], text


class ScriptedEngine:
    """An engine that fails on request, and counts what it received and what is still running."""

    def __init__(self):
        self.received, self.running, self.cancelled = [], 0, 0
        self.lock = threading.Lock()

    def track(self, delta):
        with self.lock:
            self.running += delta

    async def complete(self, request):
        body = await request.json()
        fault, text = fault_of(body)
        self.received.append(text)
        return await getattr(self, fault)(request, body)

    async def ok(self, request, body):
        return JSONResponse({"id": "c1", "choices": [{"message": {"content": "fine"}}]})

    async def ok_stream(self, request, body):
        return self.stream([CHUNK] * 3 + [b"data: [DONE]\n\n"], pause=0.01)

    async def stall_first(self, request, body):
        self.track(+1)
        try:  # thinks past the proxy's idle limit; notices when the proxy hangs up
            deadline = time.monotonic() + IDLE + 4
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    self.cancelled += 1
                    return Response(status_code=499)
                await asyncio.sleep(0.05)
            return JSONResponse({"late": True})
        finally:
            self.track(-1)

    async def stall_mid(self, request, body):
        return self.stream([CHUNK, CHUNK], pause=IDLE + 3, first_pause=0)

    async def status_500(self, request, body):
        return JSONResponse({"error": {"message": "engine fell over", "code": 500}}, status_code=500)

    async def status_503(self, request, body):
        return JSONResponse({"error": {"message": "engine overloaded", "code": 503}}, status_code=503)

    async def non_json(self, request, body):
        return Response(b"<html>bad gateway</html>", media_type="application/json")

    async def reset(self, request, body):
        async def chunks():
            yield CHUNK
            await asyncio.sleep(0.05)
            raise ConnectionResetError("scripted reset")  # uvicorn drops the connection mid-body
        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def slow_steady(self, request, body):  # 3 s in all, each gap under the idle limit
        return self.stream([CHUNK] * 6 + [b"data: [DONE]\n\n"], pause=IDLE / 2)

    async def long_stream(self, request, body):  # 20 chunks over 2 s
        return self.stream([CHUNK] * 20 + [b"data: [DONE]\n\n"], pause=0.1)

    async def endless(self, request, body):
        return self.stream(iter(lambda: CHUNK, None), pause=0.05)

    def stream(self, chunks, pause, first_pause=None):
        async def body():
            self.track(+1)
            try:
                for i, chunk in enumerate(chunks):
                    await asyncio.sleep(first_pause if i == 0 and first_pause is not None else pause)
                    yield chunk
            finally:  # also when the proxy closes the connection: the request is cancelled
                self.track(-1)
        return StreamingResponse(body(), media_type="text/event-stream")

    def app(self):
        return Starlette(routes=[Route(path, self.complete, methods=["POST"]) for path in PATHS])


@pytest.fixture(scope="module")
def engine():
    scripted = ScriptedEngine()
    with in_thread(scripted.app()) as url:
        yield scripted, url


@pytest.fixture(scope="module")
def proxy(model_dir, engine):
    with service(model_dir, "--upstream", engine[1], "--upstream-timeout", IDLE, "--max-connections", 64) as (url, p):
        yield url, p


def ask(url, fault, stream=False, timeout=30):
    """(status, body bytes or the error that cut it, seconds taken) of one completion request through the proxy."""
    start = time.monotonic()
    try:
        with httpx.stream("POST", f"{url}/v1/completions", timeout=timeout,
                          json={"model": "m", "prompt": f"{fault} {time.monotonic_ns()}", "stream": stream}) as r:
            try:
                data = b"".join(r.iter_raw())
            except httpx.HTTPError as e:
                data = e
            return r.status_code, data, time.monotonic() - start
    except httpx.HTTPError as e:
        return None, e, time.monotonic() - start


# (fault, streamed, status, the body: ("is", bytes) or ("starts", bytes), the kind /metrics counts)
FAULTS = [
    ("stall_first", False, 504, ("starts", b'{"error":"the upstream http://'), "first_byte_timeout"),
    ("stall_mid", True, 200, ("starts", CHUNK + b'data: {"error": {"message": "the upstream sent nothing for 1 s'),
     "stall_mid_stream"),
    ("status_500", False, 500, ("is", b'{"error":{"message":"engine fell over","code":500}}'), "status_500"),
    ("status_503", False, 503, ("is", b'{"error":{"message":"engine overloaded","code":503}}'), "status_503"),
    ("non_json", False, 200, ("is", b"<html>bad gateway</html>"), "bad_body"),
    ("reset", True, 200, ("starts", CHUNK + b'data: {"error": {"message": "the upstream broke off mid-answer'),
     "reset"),
    ("slow_steady", True, 200, ("is", CHUNK * 6 + b"data: [DONE]\n\n"), None),
]


@pytest.mark.parametrize("fault, streamed, status, body, kind", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_engine_fault_gets_its_documented_answer_in_time(proxy, fault, streamed, status, body, kind):
    url = proxy[0]
    before = metric(url, f'thinkcount_upstream_failures_total{{kind="{kind}"}}') if kind else None
    got_status, data, seconds = ask(url, fault, stream=streamed)
    assert got_status == status and isinstance(data, bytes)
    mode, expected = body
    assert data == expected if mode == "is" else data.startswith(expected)
    if fault == "slow_steady":
        assert seconds > 2 * IDLE  # a stream longer than the idle limit, never cut while it keeps coming
    else:
        assert seconds < IDLE + 1
    if kind:
        assert metric(url, f'thinkcount_upstream_failures_total{{kind="{kind}"}}') == before + 1
    assert ask(url, "ok")[:2] == (200, b'{"id":"c1","choices":[{"message":{"content":"fine"}}]}')  # serving on


def test_a_body_cut_mid_answer_is_cut_for_the_client_too(engine, model_dir):
    """A JSON body that breaks off must not reach the client looking whole: its connection is cut."""
    async def broken(request, body):
        async def chunks():
            yield b'{"id": "c1", "choi'
            raise ConnectionResetError("scripted reset")
        return StreamingResponse(chunks(), media_type="application/json")
    scripted, url = engine
    scripted.broken_json = broken
    with service(model_dir, "--upstream", url, "--upstream-timeout", IDLE) as (proxy_url, _):
        status, data, _ = ask(proxy_url, "broken_json")
        assert status == 200 and isinstance(data, httpx.RemoteProtocolError)
        assert metric(proxy_url, 'thinkcount_upstream_failures_total{kind="reset"}') == 1


def test_a_client_that_hangs_up_cancels_the_engine_s_request(proxy, engine):
    scripted, url = engine[0], proxy[0]
    with httpx.stream("POST", f"{url}/v1/completions", json={"prompt": "endless 1", "stream": True}) as reply:
        assert next(reply.iter_raw()).startswith(b"data:")
        assert scripted.running == 1
    wait_for(lambda: scripted.running == 0, "the engine still streams to a client that left")
    cancelled = scripted.cancelled
    with pytest.raises(httpx.ReadTimeout):  # hangs up while the engine still thinks, before any byte
        httpx.post(f"{url}/v1/completions", json={"prompt": "stall_first 2"}, timeout=0.3)
    wait_for(lambda: scripted.cancelled == cancelled + 1, "the engine never saw the request cancelled")


def wait_for(condition, message, seconds=3):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.02)


def test_sigterm_lets_20_open_streams_finish(model_dir, engine):
    scripted, url = engine
    with service(model_dir, "--upstream", url) as (proxy_url, proc):
        results = []
        threads = [threading.Thread(target=lambda: results.append(ask(proxy_url, "long_stream", stream=True)))
                   for _ in range(20)]
        for thread in threads:
            thread.start()
        wait_for(lambda: scripted.running == 20, "the 20 streams did not all start", seconds=20)
        proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
        assert proc.wait(30) == 0
        assert [(status, data) for status, data, _ in results] == [(200, CHUNK * 20 + b"data: [DONE]\n\n")] * 20


# ---- the predictor fails: fail-open, or fail-closed ----
class FailingSlot:
    """Stands in for the model slot: scoring raises, or takes `delay` seconds."""
    folder, version, workers = "failing", "0", 1
    names = ModelNames(model_aware=False, known=None, mapping={})

    def __init__(self, delay=None):
        self.delay = delay

    def score(self, prompts, worker=0):
        if self.delay is None:
            raise RuntimeError("the predictor broke")
        time.sleep(self.delay)
        return [{"score": 0.0, "expected_counts": 1.0} for _ in prompts]


class Echo:
    """An engine that answers each request with the priority it was given."""

    def __init__(self):
        self.priorities = []

    async def complete(self, request):
        body = await request.json()
        self.priorities.append(body.get("priority"))
        return JSONResponse({"priority": body.get("priority")})

    def app(self):
        return Starlette(routes=[Route(path, self.complete, methods=["POST"]) for path in PATHS])


def serving(app, config):
    """The service's own uvicorn server (connection cap, header deadline) in a thread; yields its URL."""
    port = free_port()
    uv = server(app, config, "127.0.0.1", port)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, "the server did not start", seconds=10)
    return uv, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def in_process():
    """Start an app with a given slot and config in this process; stopped after the test."""
    servers = []

    def start(config, slot):
        uv, thread, url = serving(create_app(config, slot), config)
        servers.append((uv, thread))
        return url
    yield start
    for uv, thread in servers:
        uv.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("delay, reason", [(None, "error"), (2.0, "timeout")])
def test_a_failing_or_slow_predictor_never_fails_a_request(in_process, delay, reason):
    echo = Echo()
    with in_thread(echo.app()) as engine_url:
        url = in_process(ServeConfig("m", upstream=engine_url, score_budget_ms=200, neutral_priority=30,
                                     aging_seconds=3600), FailingSlot(delay))
        start = time.monotonic()
        reply = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}]})
        assert time.monotonic() - start < 1.5  # within the 0.2 s budget, not the predictor's 2 s
        assert reply.status_code == 200 and reply.json() == {"priority": 30}
        assert reply.headers["x-thinkcount-score"] == "unavailable" and echo.priorities == [30]
        assert metric(url, f'thinkcount_score_unavailable_total{{reason="{reason}"}}') == 1


def test_fail_closed_refuses_what_it_cannot_score(in_process):
    echo = Echo()
    with in_thread(echo.app()) as engine_url:
        url = in_process(ServeConfig("m", upstream=engine_url, fail_closed=True), FailingSlot())
        reply = httpx.post(f"{url}/v1/completions", json={"prompt": "Hi"})
        assert reply.status_code == 503 and "fail-closed" in reply.json()["error"] and echo.priorities == []


# ---- slow and surplus clients ----
def slow_loris(url, count):
    """count connections that send half a request line and nothing more."""
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        sockets.append(s)
    return sockets


def test_slow_clients_are_cut_and_surplus_ones_told_to_retry(in_process):
    echo = Echo()
    with in_thread(echo.app()) as engine_url:
        config = ServeConfig("m", upstream=engine_url, max_connections=8, header_timeout=1.0, body_timeout=1.0)
        url = in_process(config, FailingSlot(delay=0))
        sockets = slow_loris(url, 8)
        try:
            time.sleep(0.2)
            reply = httpx.post(f"{url}/v1/completions", json={"prompt": "Hi"})
            assert reply.status_code == 503 and reply.headers["retry-after"] == "1"  # over the cap: no hang
            answers = [s.recv(4096) for s in sockets]  # each cut at its header deadline
            assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)
        finally:
            for s in sockets:
                s.close()
        start = time.monotonic()
        assert httpx.post(f"{url}/v1/completions", json={"prompt": "Hi"}).status_code == 200
        assert time.monotonic() - start < 0.5  # real requests keep their latency once the tricklers are gone
        assert metric(url, 'thinkcount_clients_refused_total{reason="slow_headers"}') == 8
        assert metric(url, 'thinkcount_clients_refused_total{reason="max_connections"}') == 1
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as s:  # whole headers, then a body that trickles
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                      b"content-length: 100\r\n\r\n{")
            assert s.recv(4096).startswith(b"HTTP/1.1 408 ")


# ---- admin routes ----
def test_reload_needs_the_admin_token(model_dir):
    with service(model_dir, "--admin-token", "s3cret") as (url, _):
        before = httpx.get(f"{url}/healthz").json()["version"]
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
            reply = httpx.post(f"{url}/reload", json={"model": "/nowhere"}, headers=headers)
            assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"
        reply = httpx.post(f"{url}/reload", headers={"authorization": "Bearer s3cret"})
        assert reply.status_code == 200 and reply.json()["version"] == before


def request_from(host, authorization=None):
    return SimpleNamespace(client=SimpleNamespace(host=host),
                           headers={"authorization": authorization} if authorization else {})


def test_without_a_token_only_this_machine_may_reload():
    check_admin(request_from("127.0.0.1"), None)
    check_admin(request_from("::1"), None)
    for host in ("10.0.0.5", "192.168.1.2", "testclient"):
        with pytest.raises(BadRequest, match="answer only this machine"):
            check_admin(request_from(host), None)
    with pytest.raises(BadRequest, match="wrong admin token"):
        check_admin(request_from("127.0.0.1"), "t")  # with a token, loopback needs it too
    check_admin(request_from("10.0.0.5", "Bearer t"), "t")


# ---- a short soak ----
SOAK_SECONDS = float(os.environ.get("THINKCOUNT_SOAK_SECONDS", "30"))
MIX = ["ok"] * 6 + ["ok_stream"] * 4 + ["status_503", "non_json", "reset", "stall_mid", "stall_first"]


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def soak(url, seconds, clients=16):
    """Mixed normal and faulty requests from `clients` loops for `seconds`; each request's (id, status)."""
    answers, deadline = [], time.monotonic() + seconds

    async def loop(client, worker):
        n = 0
        while time.monotonic() < deadline:
            fault, n = MIX[(worker + n) % len(MIX)], n + 1
            ident = f"{worker}-{n}"
            try:
                async with client.stream("POST", f"{url}/v1/completions", json={
                        "prompt": f"{fault} {ident}", "stream": fault in ("ok_stream", "reset", "stall_mid")}) as r:
                    await r.aread()
                    answers.append((ident, fault, r.status_code))
            except httpx.HTTPError as e:
                answers.append((ident, fault, type(e).__name__))
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as client:
        await asyncio.gather(*[loop(client, w) for w in range(clients)])
    return answers


def test_a_short_soak_loses_no_request_and_leaks_nothing(model_dir, engine):
    scripted, engine_url = engine
    with service(model_dir, "--upstream", engine_url, "--upstream-timeout", IDLE) as (url, proc):
        asyncio.run(soak(url, 3))  # warm-up: connection pools and caches fill
        files, rss = open_files(proc.pid), rss_kib(proc.pid)
        sent_before = len(scripted.received)
        answers = asyncio.run(soak(url, SOAK_SECONDS))
        time.sleep(IDLE + 0.5)  # let cancelled engine requests close
        idents = [a[0] for a in answers]
        assert len(idents) == len(set(idents)) and len(idents) > 100  # one answer per request
        received = [text.split()[1] for text in scripted.received[sent_before:]]
        assert sorted(received) == sorted(idents)  # each reached the engine once: none lost, none retried
        expected = {"ok": 200, "ok_stream": 200, "status_503": 503, "non_json": 200, "reset": 200, "stall_mid": 200,
                    "stall_first": 504}
        assert all(status == expected[fault] for _, fault, status in answers), \
            {a for a in answers if a[2] != expected[a[1]]}
        assert open_files(proc.pid) <= files + 8 and scripted.running == 0  # no descriptor grows with traffic
        assert rss_kib(proc.pid) - rss < 30 * 1024  # flat within 30 MiB over the soak
