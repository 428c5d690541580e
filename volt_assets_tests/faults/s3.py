"""An HTTP-aware proxy in front of an S3 endpoint: it reads each request and, for a share
chosen by a seeded RNG, answers an S3 XML error instead of (or after) forwarding it.

    with S3FaultProxy(s3_url, seed=7, error_rate=0.10) as proxy:
        env["AWS_ENDPOINT_URL"] = proxy.url
        ...
        assert proxy.injected  # which requests got which error

Faults:
- `error_rate`: share of requests answered with one of `errors` (500 InternalError,
  503 ServiceUnavailable, 503 SlowDown by default). Of those, `after_share` are forwarded
  first and the answer is thrown away: the write happened, the client sees a failure and
  retries, so idempotence is tested too;
- `reset_rate`: share of requests whose connection is reset instead of answered;
A request the proxy cannot parse is a bug of the proxy, not an injected fault: it is kept in
`proxy_errors`, and leaving the `with` block raises when there is any.
- `only`: a regex on "METHOD /path" limiting which requests may be faulted;
- `fail_after(method, path_regex, times)`: the first `times` matching requests are forwarded
  and answered 503 SlowDown whatever the RNG says (a write that surely happened unseen);
- `hold(method, path_regex)`: the first matching request is held (not forwarded) until
  `release()`; `Hold.hit` is set when it arrives. Tests kill a run at that exact point: the
  request never reaches S3 when its client died meanwhile. The proxy checks this after the
  release.

HTTP/1.1 with keep-alive, Content-Length and chunked bodies, `Expect: 100-continue` (the
proxy answers 100 itself and drops the header, which SigV4 does not sign). One thread per
client connection, one upstream connection per client connection.
"""

from __future__ import annotations

import random
import re
import socket
import struct
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

ERRORS = (
    (500, "InternalError", "We encountered an internal error. Please try again."),
    (503, "ServiceUnavailable", "Service is unable to handle request."),
    (503, "SlowDown", "Please reduce your request rate."),
)
REASONS = {
    500: "Internal Server Error",
    503: "Service Unavailable",
    403: "Forbidden",
    404: "Not Found",
}
MAX_HEAD = 64 * 1024


class _Closed(Exception):
    """The peer closed the connection between messages."""


@dataclass
class Message:
    """One HTTP message: the start line, headers (original bytes kept), the raw body."""

    start: str
    head: bytes  # start line + headers + CRLF CRLF, byte-exact
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    @property
    def method(self) -> str:
        return self.start.split(" ", 1)[0]

    @property
    def path(self) -> str:
        """The request target, percent-decoded (keys are matched as they read)."""
        return unquote(self.start.split(" ")[1])

    @property
    def status(self) -> int:
        return int(self.start.split(" ")[1])

    def keeps_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.start.endswith("HTTP/1.0") or self.start.startswith("HTTP/1.0"):
            return connection == "keep-alive"
        return connection != "close"


def _read_head(reader) -> Message:
    lines = []
    size = 0
    while True:
        line = reader.readline(MAX_HEAD)
        if not line:
            if not lines:
                raise _Closed()
            raise ConnectionError("connection closed inside an HTTP head")
        size += len(line)
        if size > MAX_HEAD:
            raise ConnectionError("HTTP head too large")
        if not lines and line in (b"\r\n", b"\n"):
            continue  # stray CRLF between messages
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            break
    head = b"".join(lines)
    text = head.decode("latin-1")
    start, *rest = text.split("\r\n")
    headers: dict[str, str] = {}
    for line in rest:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return Message(start=start, head=head, headers=headers)


def _read_chunked(reader) -> bytes:
    """A chunked body with its framing, byte-exact (it is forwarded as it came)."""
    out = bytearray()
    while True:
        line = reader.readline(MAX_HEAD)
        if not line:
            raise ConnectionError("connection closed inside a chunked body")
        out += line
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, then the empty line
                trailer = reader.readline(MAX_HEAD)
                if not trailer:
                    raise ConnectionError("connection closed inside chunk trailers")
                out += trailer
                if trailer in (b"\r\n", b"\n"):
                    return bytes(out)
        out += _read_exactly(reader, size + 2)


def _read_exactly(reader, n: int) -> bytes:
    data = reader.read(n)
    if len(data) != n:
        raise ConnectionError(f"connection closed after {len(data)} of {n} body bytes")
    return data


def _read_body(reader, message: Message, *, response_to: str | None = None) -> None:
    h = message.headers
    if response_to is not None:
        status = message.status
        if response_to == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return
    if "chunked" in h.get("transfer-encoding", "").lower():
        message.body = _read_chunked(reader)
    elif "content-length" in h:
        message.body = _read_exactly(reader, int(h["content-length"]))
    elif response_to is not None:
        message.body = reader.read()  # until the server closes
        message.headers["connection"] = "close"


def error_response(
    status: int, code: str, text: str, *, head_only: bool = False, resource: str = ""
) -> bytes:
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{text}</Message><Resource>{resource}</Resource>"
        f"<RequestId>{request_id}</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {0 if head_only else len(body)}\r\n"
        f"x-amz-request-id: {request_id}\r\n"
        "Server: volt-fault-proxy\r\n"
        "\r\n"
    ).encode()
    return head if head_only else head + body


@dataclass
class Hold:
    """A request held at the proxy until released (see `S3FaultProxy.hold`)."""

    method: str
    pattern: re.Pattern
    hit: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    path: str | None = None
    forwarded: bool | None = None  # after release: True when the client was still there

    def wait(self, timeout: float) -> bool:
        return self.hit.wait(timeout)

    def release(self) -> None:
        self.released.set()


@dataclass
class Exchange:
    method: str
    path: str
    status: int | None
    fault: str | None


class S3FaultProxy:
    def __init__(
        self,
        upstream_url: str,
        *,
        seed: int = 0,
        error_rate: float = 0.0,
        errors=ERRORS,
        after_share: float = 0.0,
        reset_rate: float = 0.0,
        only: str | None = None,
    ):
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.error_rate, self.errors, self.after_share, self.reset_rate = (
            error_rate,
            tuple(errors),
            after_share,
            reset_rate,
        )
        self.only = re.compile(only) if only else None
        self.rng = random.Random(seed)
        self.exchanges: list[Exchange] = []
        self.proxy_errors: list[str] = []  # parsing failures of the proxy itself (must stay empty)
        self._holds: list[Hold] = []
        self._forced: list[list] = []  # [method, compiled path regex, requests left]
        self._lock = threading.Lock()
        self._clients: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopping = False
        threading.Thread(
            target=self._accept_loop, name=f"s3-proxy-{self.port}", daemon=True
        ).start()

    # --- what happened ----------------------------------------------------------------------
    @property
    def injected(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.fault]

    @property
    def requests(self) -> int:
        return len(self.exchanges)

    def fault_counts(self) -> Counter:
        return Counter(e.fault for e in self.injected)

    # --- control ----------------------------------------------------------------------------
    def fail_after(self, method: str, path_regex: str, times: int = 1) -> None:
        with self._lock:
            self._forced.append([method.upper(), re.compile(path_regex), times])

    def hold(self, method: str, path_regex: str) -> Hold:
        hold = Hold(method.upper(), re.compile(path_regex))
        with self._lock:
            self._holds.append(hold)
        return hold

    def _claim_hold(self, request: Message) -> Hold | None:
        with self._lock:
            for hold in self._holds:
                if (
                    hold.path is None
                    and hold.method == request.method
                    and hold.pattern.search(request.path)
                ):
                    hold.path = request.path
                    return hold
        return None

    def _decide(self, request: Message) -> tuple[str, tuple | None]:
        """('pass' | 'before' | 'after' | 'reset', error) for one request, from the seeded RNG."""
        if self.only is not None and not self.only.search(f"{request.method} {request.path}"):
            return "pass", None
        with self._lock:
            for forced in self._forced:
                if forced[2] and forced[0] == request.method and forced[1].search(request.path):
                    forced[2] -= 1
                    return "after", ERRORS[2]
            roll = self.rng.random()
            if roll < self.error_rate:
                error = self.rng.choice(self.errors)
                return ("after" if self.rng.random() < self.after_share else "before"), error
            if roll < self.error_rate + self.reset_rate:
                return "reset", None
        return "pass", None

    # --- plumbing ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._clients.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _record(self, request: Message, status: int | None, fault: str | None) -> None:
        with self._lock:
            self.exchanges.append(Exchange(request.method, request.path, status, fault))

    @staticmethod
    def _client_gone(client: socket.socket) -> bool:
        try:
            return client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        upstream = up_reader = None
        try:
            while True:
                try:
                    request = _read_head(reader)
                except _Closed:
                    return
                if request.headers.get("expect", "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    request.head = re.sub(rb"(?im)^expect:[^\r\n]*\r\n", b"", request.head)
                _read_body(reader, request)

                hold = self._claim_hold(request)
                if hold is not None:
                    hold.hit.set()
                    hold.released.wait(120)
                    if self._client_gone(client):
                        hold.forwarded = False
                        self._record(request, None, "held, client gone")
                        return
                    hold.forwarded = True

                action, error = self._decide(request)
                if action == "reset":
                    self._record(request, None, "reset")
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if action == "before":
                    status, code, text = error
                    client.sendall(
                        error_response(
                            status,
                            code,
                            text,
                            head_only=request.method == "HEAD",
                            resource=request.path,
                        )
                    )
                    self._record(request, status, f"{status} {code}")
                    continue

                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=60)
                    up_reader = upstream.makefile("rb")
                upstream.sendall(request.head + request.body)
                response = _read_head(up_reader)
                while 100 <= response.status < 200:  # interim answers: not for this client
                    response = _read_head(up_reader)
                _read_body(up_reader, response, response_to=request.method)
                if not response.keeps_alive():
                    up_reader.close()
                    upstream.close()
                    upstream = up_reader = None

                if action == "after":
                    status, code, text = error
                    client.sendall(
                        error_response(
                            status,
                            code,
                            text,
                            head_only=request.method == "HEAD",
                            resource=request.path,
                        )
                    )
                    self._record(request, status, f"{status} {code} (after forwarding)")
                    continue
                client.sendall(response.head + response.body)
                self._record(request, response.status, None)
                if not response.keeps_alive() or not request.keeps_alive():
                    return
        except (OSError, ConnectionError):
            return  # a client or S3 went away: the client retries, as it would on the wire
        except (ValueError, IndexError) as exc:
            # the proxy could not parse HTTP: a bug here, not a fault it meant to inject
            with self._lock:
                self.proxy_errors.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            for closable in (up_reader, upstream, reader, client):
                try:
                    if closable is not None:
                        closable.close()
                except OSError:
                    pass
            with self._lock:
                self._clients.discard(client)

    def close(self) -> None:
        self._stopping = True
        self._listener.close()
        with self._lock:
            holds, clients = list(self._holds), list(self._clients)
        for hold in holds:
            hold.release()
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> S3FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        # a broken proxy must not pass for an injected fault
        if exc[0] is None and self.proxy_errors:
            raise AssertionError(f"the S3 proxy failed to parse traffic: {self.proxy_errors[:5]}")
