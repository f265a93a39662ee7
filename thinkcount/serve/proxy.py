"""The priority proxy: score an OpenAI-style request's prompt, give it vLLM's `priority`, and forward it.

vLLM started with `--scheduling-policy priority` serves a lower `priority` first. A request's priority is
10 levels per e-fold of its predicted counts (1 count: 0, 2.7: 10, 20: 30, 150: 50), plus one level per
--aging-seconds since the proxy started. The second term is the aging rule: a request predicted C times
longer than a later one is served after it only if the later one arrives within 10 x ln(C) x aging seconds;
everything arriving after that queues behind it, so no request waits forever. The answer, streamed or
not, is passed back byte for byte, with the prediction in x-thinkcount-* headers.

On a request path the proxy must never make the engine less available than it is (the failure table is in
docs/serving.md): a score that fails or outlasts --score-budget-ms sends the request on at a neutral priority
(fail-open; --fail-closed answers 503 instead); an engine that sends nothing for --upstream-timeout seconds,
before its first byte or between two chunks, gets the client a 504, or ends a stream under way; every way the
engine fails is counted; and the engine's request is closed, so cancelled, whenever the client's is."""
import asyncio
import json
import math
import time

import httpx
from starlette.responses import JSONResponse, StreamingResponse

from thinkcount.serve.traffic import AnswerReader, Exchange, parsed, request_id
from thinkcount.serve.web import BadRequest, parse_json_body, read_body

PATHS = ("/v1/chat/completions", "/v1/completions")
LEVELS_PER_E_FOLD = 10
# Headers that describe one connection, not the message: never passed on (content-length is recomputed).
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length",
              "proxy-authenticate", "proxy-authorization"}


def prompt_of(path, body):
    """The text to score: the last user message of a chat request, or a completion request's prompt."""
    if path.endswith("/chat/completions"):
        messages = body.get("messages")
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] \
            if isinstance(messages, list) else []
        if not users:
            raise BadRequest(400, "`messages` has no user message to score.")
        return message_text(users[-1].get("content"))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompt = "\n".join(prompt)
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequest(400, "`prompt` must be a non-empty string or list of strings.")
    return prompt


def message_text(content):
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, list):
        content = "\n".join(part["text"] for part in content if isinstance(part, dict)
                            and part.get("type") == "text" and isinstance(part.get("text"), str))
    if not isinstance(content, str) or not content.strip():
        raise BadRequest(400, "the last user message has no text to score.")
    return content


def priority(expected_counts, aging_levels):
    """vLLM's priority (lower is served first): the predicted effort's level plus the levels aged."""
    return int(round(LEVELS_PER_E_FOLD * math.log(max(expected_counts, 1.0)))) + aging_levels


def capped(body, expected_counts, tokens_per_count):
    """The request with its output budget capped at tokens_per_count per expected count (at least 1)."""
    cap = max(1, math.ceil(tokens_per_count * expected_counts))
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    asked = body.get(key)
    return {**body, key: min(asked, cap) if isinstance(asked, int) and asked > 0 else cap}


class UpstreamBroke(Exception):
    """The engine failed mid-answer on a body that is not an event stream: the client's connection is cut, since
    a JSON body that ends early must not look whole."""


async def predicted(prompt, served, config, score_request, metrics):
    """(the predictor's result, the model label) for prompt; the result is None when the predictor raised, took
    over the score budget or does not know the request's model (fail-open: the request goes on at a neutral
    priority); fail-closed, such a request is refused with 503."""
    label = "unknown"
    try:
        result, label = await asyncio.wait_for(score_request(prompt, served), config.score_budget_ms / 1000)
        if result is not None:
            return result, label
        reason = "unknown_model"
    except TimeoutError:
        reason = "timeout"
    except Exception:  # noqa: BLE001 - any failure of the predictor; a priority hint must not cost the request
        reason = "error"
    metrics.score_unavailable.labels(reason=reason).inc()
    if config.fail_closed:
        raise BadRequest(503, f"the predictor could not score this request ({reason}) and the proxy is fail-closed.")
    return None, label


def routed(body, result, config, aged):
    """(body to send, upstream URL, x-thinkcount-* headers) for a scored request, or one that could not be."""
    if result is None:
        level = config.neutral_priority + aged
        return ({**body, "priority": level}, config.upstream,
                {"x-thinkcount-score": "unavailable", "x-thinkcount-priority": str(level),
                 "x-thinkcount-upstream": "default"})
    expected = result["expected_counts"]
    body = {**body, "priority": priority(expected, aged)}
    if config.tokens_per_count:
        body = capped(body, expected, config.tokens_per_count)
    long = config.threshold is not None and expected >= config.threshold
    headers = {"x-thinkcount-score": f"{result['score']:.6g}", "x-thinkcount-expected-counts": f"{expected:.6g}",
               "x-thinkcount-priority": str(body["priority"]),
               "x-thinkcount-upstream": "reasoning" if long else "default"}
    return body, config.reasoning_upstream if long else config.upstream, headers


def handler(path, config, state, score_request, metrics):
    """The route for one OpenAI path: score, set priority (and route, cap), forward, stream back; with a traffic
    log, each request that reached the engine, or failed to, becomes one record."""
    async def proxy(request):
        body = parse_json_body(await read_body(request, config.max_body_bytes, config.body_timeout))
        prompt, arrival = prompt_of(path, body), time.time()
        served = body.get("model") if isinstance(body.get("model"), str) else None
        result, label = await predicted(prompt, served, config, score_request, metrics)
        aged = int((time.monotonic() - state["started"]) / config.aging_seconds)
        body, upstream, headers = routed(body, result, config, aged)
        headers["x-thinkcount-model"] = label.encode("ascii", "backslashreplace").decode()  # a header is latin-1
        log = logger(state.get("traffic"), prompt, served, label, body, result, headers, arrival)
        return await forward(state["client"], upstream.rstrip("/") + path, body, request, headers, metrics,
                             config.upstream_timeout, log, read_events="traffic" in state)
    return proxy


def logger(traffic, prompt, served, label, body, result, headers, arrival):
    """log(status, error, reader): hands the finished request to the traffic log (a no-op without one)."""
    if traffic is None:
        return lambda status, error, reader=None: None
    # The name the predictor knew the request by, where it knew one (else the served name).
    model = served if label in ("pooled", "fallback", "unknown") else label
    prediction = None if result is None else {"score": result["score"], "expected_counts": result["expected_counts"],
                                              "priority": body["priority"],
                                              "upstream": headers["x-thinkcount-upstream"]}

    def log(status, error, reader=None):
        reader = reader or AnswerReader(event_stream=False, readable=False)
        traffic.submit(Exchange(
            request_id=request_id(arrival, prompt), arrival=arrival, finish=time.time(),
            first_token=reader.first_token, prompt=prompt, served_model=served, model=model,
            prediction=prediction, status=status, error=error, reasoning="".join(reader.reasoning),
            content="".join(reader.content), finish_reason=reader.finish_reason,
            completion_tokens=reader.completion_tokens, reasoning_tokens=reader.reasoning_tokens,
            text_capped=reader.text_capped))
    return log


async def client_gone(request):
    """Returns once the client has hung up (its body is read, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def send_upstream(client, outgoing, request):
    """The engine's response headers, or None when the client hung up first (the engine's request is cancelled)."""
    sending = asyncio.ensure_future(client.send(outgoing, stream=True))
    gone = asyncio.ensure_future(client_gone(request))
    try:
        await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, gone):
            if not task.done():
                task.cancel()
    return sending.result() if sending.done() and not sending.cancelled() else None


# The failures before the engine's first byte: (kind, status, the sentence's end after "the upstream URL").
BEFORE_ANSWER = [(httpx.ConnectTimeout, "connect_timeout", 504, "did not accept a connection in time."),
                 (httpx.ReadTimeout, "first_byte_timeout", 504, "sent nothing within {idle:g} s."),
                 (httpx.ConnectError, "connect_error", 502, "did not answer ({error})."),
                 (httpx.HTTPError, "reset", 502, "broke off before answering ({error}).")]


async def forward(client, url, body, request, extra_headers, metrics, idle_timeout, log, read_events=False):
    """POST body to url and stream the answer back unchanged (status, headers, bytes), plus extra_headers."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    outgoing = client.build_request("POST", url, content=json.dumps(body).encode(), headers=headers)
    try:
        response = await send_upstream(client, outgoing, request)
    except httpx.HTTPError as e:
        _, kind, status, end = next(f for f in BEFORE_ANSWER if isinstance(e, f[0]))
        metrics.upstream_failures.labels(kind=kind).inc()
        log(status, kind)
        raise BadRequest(status, f"the upstream {url} " + end.format(idle=idle_timeout, error=type(e).__name__)) \
            from None
    if response is None:
        metrics.upstream_failures.labels(kind="client_gone").inc()
        log(499, "client_gone")
        return JSONResponse({"error": "the client hung up."}, status_code=499)
    if response.status_code >= 500:
        metrics.upstream_failures.labels(kind=f"status_{response.status_code}").inc()
    passed = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
    relay = Relay(response, metrics, idle_timeout, read_events)
    return UpstreamResponse(relay, log, status_code=response.status_code,
                            headers={**passed, **extra_headers})


class UpstreamResponse(StreamingResponse):
    """The engine's answer streamed to the client. The engine's response is closed however the stream ends
    (done, failed, or the client gone): closing an unfinished one drops its connection, which cancels the
    engine's request. Then the request goes to the traffic log."""

    def __init__(self, relay, log, **kwargs):
        super().__init__(relay.chunks(), **kwargs)
        self.relay, self.log = relay, log

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.relay.response.aclose()
            error = self.relay.error or (None if self.relay.complete else "client_gone")
            self.log(self.relay.response.status_code, error, self.relay.reader.finish())


def is_event_stream(response):
    return response.headers.get("content-type", "").startswith("text/event-stream")


class Relay:
    """The engine's bytes as they come, read on the side (AnswerReader). A stall past idle_timeout or a break
    mid-answer is counted and ends the answer: an event stream with an OpenAI-style error event, any other body
    by cutting the connection. Events are parsed only for the traffic log (read_events); a JSON body always is, to
    count one that does not parse."""

    def __init__(self, response, metrics, idle_timeout, read_events):
        self.response, self.metrics, self.idle_timeout = response, metrics, idle_timeout
        stream = is_event_stream(response)
        self.reader = AnswerReader(stream, readable=not response.headers.get("content-encoding")
                                   and (read_events or not stream))
        self.error, self.complete = None, False

    async def chunks(self):
        try:
            async for chunk in self.response.aiter_raw():
                self.reader.feed(chunk)
                yield chunk
        except httpx.ReadTimeout:
            self.error, status = "stall_mid_stream", 504
            message = f"the upstream sent nothing for {self.idle_timeout:g} s; the answer ends here."
        except httpx.HTTPError as e:
            self.error, status, message = "reset", 502, f"the upstream broke off mid-answer ({type(e).__name__})."
        else:
            self.complete = True
            if self.json_expected() and self.reader.readable and parsed(bytes(self.reader.pending)) is None:
                self.error = "bad_body"
                self.metrics.upstream_failures.labels(kind="bad_body").inc()
            return
        self.metrics.upstream_failures.labels(kind=self.error).inc()
        await self.response.aclose()
        if not is_event_stream(self.response):
            raise UpstreamBroke(message)
        error = {"error": {"message": message, "type": "upstream_error", "code": status}}
        yield f"data: {json.dumps(error)}\n\n".encode()

    def json_expected(self):
        return not is_event_stream(self.response) and "json" in self.response.headers.get("content-type", "")
