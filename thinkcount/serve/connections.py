"""Bounded clients: a cap on open connections and a deadline for a request's headers, enforced in uvicorn's
HTTP protocol, where a connection is seen before any request on it reaches the app.

uvicorn's own `limit_concurrency` answers a bare 503 and counts differently; a slow-loris client that opens
connections and trickles its headers never reaches the app at all, so neither can be bounded from inside it.
A connection over the cap is answered, once its headers are in, with 503 and Retry-After and closed; a request
whose headers are not complete within header_timeout seconds of its first byte (or of the connection, for one
that sends nothing) gets 408 and is closed. The body's deadline is the app's (web.read_body)."""
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

RETRY_AFTER_SECONDS = 1
SLOW_HEADERS = b'{"error": "the request headers did not arrive in time."}'
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: "
                   + str(len(SLOW_HEADERS)).encode() + b"\r\nconnection: close\r\n\r\n" + SLOW_HEADERS)


async def over_capacity(scope, receive, send):
    """The answer to a request on a connection over the cap."""
    body = b'{"error": "the proxy is at its connection limit; retry shortly."}'
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def bounded_protocol(max_connections, header_timeout, on_refused=lambda: None, on_slow=lambda: None):
    """uvicorn's httptools protocol with a connection cap and a header deadline; on_refused and on_slow are
    called for each connection turned away and each one cut for slow headers (the service counts them)."""

    class BoundedHttpTools(HttpToolsProtocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            self.header_timer = None
            self.arm_header_timer()

        def arm_header_timer(self):
            if self.header_timer is None:
                self.header_timer = self.loop.call_later(header_timeout, self.headers_too_slow)

        def disarm_header_timer(self):
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def headers_too_slow(self):
            self.header_timer = None
            if not self.transport.is_closing():
                on_slow()
                self.transport.write(REQUEST_TIMEOUT)
                self.transport.close()

        def on_message_begin(self):
            super().on_message_begin()
            self.arm_header_timer()  # the next request on a kept-alive connection has the same deadline

        def on_headers_complete(self):
            self.disarm_header_timer()
            if len(self.connections) <= max_connections:
                return super().on_headers_complete()
            on_refused()
            app, self.app = self.app, over_capacity  # uvicorn reads self.app for this one request
            try:
                super().on_headers_complete()
            finally:
                self.app = app

        def connection_lost(self, exc):
            self.disarm_header_timer()
            super().connection_lost(exc)

    return BoundedHttpTools
