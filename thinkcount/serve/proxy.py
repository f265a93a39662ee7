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

from thinkcount.serve.web import BadRequest, parse_json_body, read_body

PATHS = ("/v1/chat/completions", "/v1/completions")
LEVELS_PER_E_FOLD = 10
CHECKED_BODY_BYTES = 1 << 20  # a JSON answer up to this size is checked to parse (a bad one is counted)
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


async def predicted(prompt, config, score_prompts, metrics):
    """The predictor's result for prompt, or None when it raised or took over the score budget (fail-open: the
    request goes on at a neutral priority); fail-closed, such a request is refused with 503."""
    try:
        [result] = await asyncio.wait_for(score_prompts([prompt]), config.score_budget_ms / 1000)
        return result
    except TimeoutError:
        reason = "timeout"
    except Exception:  # noqa: BLE001 - any failure of the predictor; a priority hint must not cost the request
        reason = "error"
    metrics.score_unavailable.labels(reason=reason).inc()
    if config.fail_closed:
        raise BadRequest(503, f"the predictor could not score this request ({reason}) and the proxy is fail-closed.")
    return None


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


def handler(path, config, state, score_prompts, metrics):
    """The route for one OpenAI path: score, set priority (and route, cap), forward, stream back."""
    async def proxy(request):
        body = parse_json_body(await read_body(request, config.max_body_bytes, config.body_timeout))
        result = await predicted(prompt_of(path, body), config, score_prompts, metrics)
        aged = int((time.monotonic() - state["started"]) / config.aging_seconds)
        body, upstream, headers = routed(body, result, config, aged)
        return await forward(state["client"], upstream.rstrip("/") + path, body, request, headers, metrics,
                             config.upstream_timeout)
    return proxy


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


async def forward(client, url, body, request, extra_headers, metrics, idle_timeout):
    """POST body to url and stream the answer back unchanged (status, headers, bytes), plus extra_headers."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    outgoing = client.build_request("POST", url, content=json.dumps(body).encode(), headers=headers)
    try:
        response = await send_upstream(client, outgoing, request)
    except httpx.ConnectTimeout:
        raise upstream_failed(metrics, "connect_timeout", 504, f"the upstream {url} did not accept a connection "
                              "in time.") from None
    except httpx.ReadTimeout:
        raise upstream_failed(metrics, "first_byte_timeout", 504, f"the upstream {url} sent nothing within "
                              f"{idle_timeout:g} s.") from None
    except httpx.ConnectError as e:
        raise upstream_failed(metrics, "connect_error", 502, f"the upstream {url} did not answer "
                              f"({type(e).__name__}).") from None
    except httpx.HTTPError as e:
        raise upstream_failed(metrics, "reset", 502, f"the upstream {url} broke off before answering "
                              f"({type(e).__name__}).") from None
    if response is None:
        metrics.upstream_failures.labels(kind="client_gone").inc()
        return JSONResponse({"error": "the client hung up."}, status_code=499)
    if response.status_code >= 500:
        metrics.upstream_failures.labels(kind=f"status_{response.status_code}").inc()
    passed = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
    return UpstreamResponse(response, relay(response, metrics, idle_timeout), status_code=response.status_code,
                            headers={**passed, **extra_headers})


def upstream_failed(metrics, kind, status, message):
    metrics.upstream_failures.labels(kind=kind).inc()
    return BadRequest(status, message)


class UpstreamResponse(StreamingResponse):
    """The engine's answer streamed to the client. The engine's response is closed however the stream ends
    (done, failed, or the client gone): closing an unfinished one drops its connection, which cancels the
    engine's request."""

    def __init__(self, upstream, content, **kwargs):
        super().__init__(content, **kwargs)
        self.upstream = upstream

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.upstream.aclose()


def is_event_stream(response):
    return response.headers.get("content-type", "").startswith("text/event-stream")


async def relay(response, metrics, idle_timeout):
    """The engine's bytes as they come. A stall past idle_timeout or a break mid-answer is counted and ends the
    answer: an event stream with an OpenAI-style error event, any other body by cutting the connection."""
    checked = not is_event_stream(response) and "json" in response.headers.get("content-type", "") \
        and not response.headers.get("content-encoding")
    seen = bytearray()
    try:
        async for chunk in response.aiter_raw():
            if checked:
                seen += chunk
                checked = len(seen) <= CHECKED_BODY_BYTES  # a larger body passes unchecked
            yield chunk
    except httpx.ReadTimeout:
        kind, status, message = "stall_mid_stream", 504, f"the upstream sent nothing for {idle_timeout:g} s; " \
                                                         "the answer ends here."
    except httpx.HTTPError as e:
        kind, status, message = "reset", 502, f"the upstream broke off mid-answer ({type(e).__name__})."
    else:
        if checked and seen and not parses(seen):
            metrics.upstream_failures.labels(kind="bad_body").inc()
        return
    metrics.upstream_failures.labels(kind=kind).inc()
    await response.aclose()
    if not is_event_stream(response):
        raise UpstreamBroke(message)
    error = {"error": {"message": message, "type": "upstream_error", "code": status}}
    yield f"data: {json.dumps(error)}\n\n".encode()


def parses(data):
    try:
        json.loads(data)
        return True
    except ValueError:
        return False
