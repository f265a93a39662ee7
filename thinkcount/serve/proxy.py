"""The priority proxy: score an OpenAI-style request's prompt, give it vLLM's `priority`, and forward it.

vLLM started with `--scheduling-policy priority` serves a lower `priority` first. A request's priority is
10 levels per e-fold of its predicted counts (1 count: 0, 2.7: 10, 20: 30, 150: 50), plus one level per
--aging-seconds since the proxy started. The second term is the aging rule: a request predicted C times
longer than a later one is served after it only if the later one arrives within 10 x ln(C) x aging seconds;
everything arriving after that queues behind it, so no request waits forever. The answer, streamed or
not, is passed back byte for byte, with the prediction in x-thinkcount-* headers."""
import json
import math
import time

import httpx
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

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


def handler(path, config, state, score_prompts):
    """The route for one OpenAI path: score, set priority (and route, cap), forward, stream back."""
    async def proxy(request):
        body = parse_json_body(await read_body(request, config.max_body_bytes))
        [result] = await score_prompts([prompt_of(path, body)])
        expected = result["expected_counts"]
        aged = int((time.monotonic() - state["started"]) / config.aging_seconds)
        body = {**body, "priority": priority(expected, aged)}
        if config.tokens_per_count:
            body = capped(body, expected, config.tokens_per_count)
        long = config.threshold is not None and expected >= config.threshold
        upstream = config.reasoning_upstream if long else config.upstream
        headers = {"x-thinkcount-score": f"{result['score']:.6g}", "x-thinkcount-expected-counts": f"{expected:.6g}",
                   "x-thinkcount-priority": str(body["priority"]),
                   "x-thinkcount-upstream": "reasoning" if long else "default"}
        return await forward(state["client"], upstream.rstrip("/") + path, body, request.headers, headers)
    return proxy


async def forward(client, url, body, request_headers, extra_headers):
    """POST body to url and stream the answer back unchanged (status, headers, bytes), plus extra_headers."""
    headers = {k: v for k, v in request_headers.items() if k.lower() not in HOP_BY_HOP}
    outgoing = client.build_request("POST", url, content=json.dumps(body).encode(), headers=headers)
    try:
        response = await client.send(outgoing, stream=True)
    except httpx.HTTPError as e:
        raise BadRequest(502, f"the upstream {url} did not answer ({type(e).__name__}).") from None
    passed = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
    return StreamingResponse(response.aiter_raw(), status_code=response.status_code,
                             headers={**passed, **extra_headers}, background=BackgroundTask(response.aclose))
