"""A delaying, counting HTTP proxy in front of the bench's S3 endpoint (moto on 127.0.0.1).

Real S3 answers a request in 20-30 ms where moto on the same machine answers in about one;
the bench points the project's AWS_ENDPOINT_URL at this proxy to see what that latency costs
a run. Every request waits `delay` seconds (in its own thread, so concurrent requests wait
concurrently, as they would on a network), then goes to the endpoint with its method, path,
query and every header unchanged (Host included: the SigV4 signature the client computed for
the proxy's address still verifies). Bodies are streamed both ways in blocks, never held.

It also counts requests by kind (GET, PUT, HEAD, LIST, DELETE, POST, ...), which a 0 ms pass
uses for the "S3 requests per day and asset" numbers.

    proxy = DelayProxy("http://127.0.0.1:5000", delay=0.025).start()
    ... AWS_ENDPOINT_URL=proxy.url ...
    counts = proxy.take_counts()
    proxy.stop()
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BLOCK = 64 * 1024
# a bucket-level GET whose query holds one of these lists objects, versions or uploads
LIST_QUERIES = ("list-type", "versions", "prefix", "delimiter", "uploads", "continuation-token")


def request_kind(method: str, target: str) -> str:
    """GET, PUT, HEAD, DELETE, POST as sent, except a listing (GET of a bucket or of the
    service): LIST. Path-style addressing: /bucket or /bucket/key."""
    parts = urlsplit(target)
    key = parts.path.lstrip("/").partition("/")[2]
    if method == "GET" and not key:
        query = parse_qs(parts.query, keep_blank_values=True)
        if not query or any(q in query for q in LIST_QUERIES):
            return "LIST"
        return "GET"  # a bucket's configuration (?versioning, ?location, ...)
    return method


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a client's pool opens tens of connections at once

    def __init__(self, address, upstream: str, delay: float):
        super().__init__(address, _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port or 80)
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects
    # headers and body go out as separate writes: without this, Nagle's algorithm and the
    # peer's delayed ACK could hold the second one ~40 ms, a delay of the proxy's own
    disable_nagle_algorithm = True
    upstream_conn: http.client.HTTPConnection | None = None

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        return None  # thousands of requests: no line each

    def _connection(self) -> http.client.HTTPConnection:
        if self.upstream_conn is None:
            host, port = self.server.upstream
            self.upstream_conn = http.client.HTTPConnection(host, port, timeout=600)
        if self.upstream_conn.sock is None:  # new, or closed by http.client after a response
            self.upstream_conn.connect()
            self.upstream_conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.upstream_conn

    def _forward(self) -> None:
        self.server.count(request_kind(self.command, self.path))
        if self.server.delay:
            time.sleep(self.server.delay)
        try:
            response = self._send_upstream()
        except (OSError, http.client.HTTPException):
            # a pooled upstream connection the endpoint closed: the request cannot be replayed
            # (its body is consumed), so the client sees a 502 and retries as for any S3 error
            self._drop_upstream()
            self.send_error(502, "upstream S3 endpoint failed")
            return
        self._relay_response(response)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _forward

    def _send_upstream(self) -> http.client.HTTPResponse:
        conn = self._connection()
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._relay_chunked_request(conn)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                block = self.rfile.read(min(BLOCK, left))
                if not block:
                    raise ConnectionError("the client closed mid-body")
                conn.send(block)
                left -= len(block)
        return conn.getresponse()

    def _relay_chunked_request(self, conn: http.client.HTTPConnection) -> None:
        """Pass a chunked body through as it is framed (size lines, data, trailers)."""
        while True:
            size_line = self.rfile.readline()
            conn.send(size_line)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = self.rfile.readline()
                    conn.send(line)
                    if line in (b"\r\n", b"\n", b""):
                        return
            left = size + 2  # the data and its CRLF
            while left > 0:
                block = self.rfile.read(min(BLOCK, left))
                if not block:
                    raise ConnectionError("the client closed mid-chunk")
                conn.send(block)
                left -= len(block)

    def _relay_response(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            self.send_header(name, value)
        self.end_headers()
        no_body = self.command == "HEAD" or response.status in (204, 304)
        if no_body:
            response.read()
        elif response.chunked:  # http.client unframes it: frame it again as it came
            while block := response.read1(BLOCK):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            self.wfile.write(b"0\r\n\r\n")
        else:
            while block := response.read(BLOCK):
                self.wfile.write(block)
            if response.getheader("Content-Length") is None:
                self.close_connection = True  # a body delimited by the connection's end
        if response.will_close:
            self._drop_upstream()
        self.wfile.flush()

    def _drop_upstream(self) -> None:
        if self.upstream_conn is not None:
            self.upstream_conn.close()
            self.upstream_conn = None

    def finish(self) -> None:
        self._drop_upstream()
        super().finish()


class DelayProxy:
    """The proxy on a free port of 127.0.0.1, served by threads of this process."""

    def __init__(self, upstream: str, delay: float = 0.0):
        self._server = _Server(("127.0.0.1", 0), upstream, delay)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def delay(self) -> float:
        return self._server.delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self._server.delay = seconds

    def start(self) -> DelayProxy:
        self._thread.start()
        return self

    def take_counts(self) -> dict[str, int]:
        """The requests counted since the last call, by kind; the count starts again at zero."""
        with self._server.lock:
            counts = dict(self._server.counts)
            self._server.counts.clear()
        return counts

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
