"""What the scoring service and the proxy share about HTTP requests: a refusal of one sentence, reading a
bounded JSON body within a deadline, and whether a client is on this machine."""
import asyncio
import ipaddress
import json


class BadRequest(Exception):
    """A request the service refuses: its status, one sentence, and any headers the status calls for."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.headers = status, headers


async def read_body(request, limit, timeout=None):
    """The request's body, refused with 413 once it passes limit bytes (whatever Content-Length says), and with
    408 when it has not all arrived within timeout seconds (a client trickling it holds a connection)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body is over {limit} bytes.")

    async def whole():
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise BadRequest(413, f"the body is over {limit} bytes.")
        return bytes(body)
    try:
        return await asyncio.wait_for(whole(), timeout)
    except TimeoutError:
        raise BadRequest(408, f"the body did not arrive within {timeout:g} s.") from None


def from_loopback(request):
    """True when the client is on this machine (127.0.0.0/8 or ::1)."""
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def parse_json_body(body):
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest(400, "the body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "the body must be a JSON object.")
    return value
