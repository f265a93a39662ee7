"""What the scoring service and the proxy share about HTTP requests: a refusal of one sentence, and
reading a bounded JSON body."""
import json


class BadRequest(Exception):
    """A request the service refuses: its status and one sentence."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


async def read_body(request, limit):
    """The request's body, refused with 413 once it passes limit bytes (whatever Content-Length says)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body is over {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(413, f"the body is over {limit} bytes.")
    return bytes(body)


def parse_json_body(body):
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest(400, "the body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "the body must be a JSON object.")
    return value
