"""A TCP proxy on 127.0.0.1 that passes bytes through and breaks them on request.

Put it in front of PostgreSQL (or any TCP service) and point the pipeline at its port:

    with TcpProxy(("127.0.0.1", pg.port)) as proxy:
        proxy.drop_after(b"row_to_json", after_bytes=64 * 1024)   # one drop, mid-COPY
        env["POSTGRES_PORT"] = str(proxy.port)

Faults:
- `delay`: seconds added before every chunk forwarded (either direction);
- `refuse`: new connections are accepted and closed at once (the server looks down);
  `refuse_for(seconds)` does so from the first refused connection for `seconds`, then lets
  connections through again; `refused` counts them;
- `drop_after(pattern, after_bytes, times)`: on a connection whose client sent `pattern`
  (e.g. the text of a query), once the server has answered `after_bytes` more bytes, reset
  both sides (RST), `times` times in all. The drop lands in the middle of a result stream,
  where a network blip hurts most;
- `drop_all()`: reset every open connection now.

Threads, one per direction per connection; everything is closed by `close()`.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class DropRule:
    pattern: bytes
    after_bytes: int
    times: int
    done: int = 0


@dataclass(eq=False)  # hashed by identity: pairs live in a set
class _Pair:
    """One client connection and its upstream connection."""

    client: socket.socket
    upstream: socket.socket
    sent_upstream: bytearray = field(default_factory=bytearray)  # rolling tail, for pattern search
    armed: DropRule | None = None
    answered_since_armed: int = 0
    closed: bool = False

    def abort(self) -> None:
        """Reset both sides (SO_LINGER 0 sends RST, like a dropped network path or a killed backend)."""
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.upstream):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # close() alone does not end a recv() blocked in the other pump thread, and the
                # socket lives on until it returns; shutting down the read side wakes it.
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class TcpProxy:
    """Forward 127.0.0.1:`port` to `upstream`, with the faults described in the module doc."""

    def __init__(self, upstream: tuple[str, int], *, delay: float = 0.0):
        self.upstream = upstream
        self.delay = delay
        self.refuse = False
        self.refused = 0  # connections closed at once because of `refuse`
        self._refuse_seconds: float | None = None
        self._refuse_until: float | None = None
        self.connections = 0  # accepted so far
        self.drops = 0  # connections reset by a rule or drop_all()
        self._rules: list[DropRule] = []
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = False
        self._accepter = threading.Thread(
            target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True
        )
        self._accepter.start()

    # --- faults ---------------------------------------------------------------------------
    def drop_after(self, pattern: bytes, after_bytes: int = 0, times: int = 1) -> DropRule:
        """Reset the connection that sent `pattern` once `after_bytes` more bytes came back."""
        rule = DropRule(pattern, after_bytes, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def refuse_for(self, seconds: float) -> None:
        """Refuse new connections for `seconds` counted from the first one refused."""
        self._refuse_seconds, self._refuse_until = seconds, None
        self.refuse = True

    def _refusing(self) -> bool:
        if self.refuse and self._refuse_seconds is not None:
            now = time.monotonic()
            if self._refuse_until is None:
                self._refuse_until = now + self._refuse_seconds
            elif now >= self._refuse_until:
                self.refuse, self._refuse_seconds = False, None
        return self.refuse

    def drop_all(self) -> int:
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.abort()
        self.drops += len(pairs)
        return len(pairs)

    # --- plumbing -------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            if self._refusing():
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, False), daemon=True).start()

    def _arm(self, pair: _Pair, data: bytes) -> None:
        """Client -> server bytes: does this connection now match a drop rule?"""
        pair.sent_upstream += data
        del pair.sent_upstream[: max(0, len(pair.sent_upstream) - 4 * CHUNK)]
        if pair.armed is not None:
            return
        with self._lock:
            for rule in self._rules:
                if rule.done < rule.times and rule.pattern in pair.sent_upstream:
                    rule.done += 1  # claimed now, so two connections never share one drop
                    pair.armed = rule
                    pair.answered_since_armed = 0
                    return

    def _pump(self, pair: _Pair, to_upstream: bool) -> None:
        src, dst = (pair.client, pair.upstream) if to_upstream else (pair.upstream, pair.client)
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)
                if to_upstream:
                    self._arm(pair, data)
                elif pair.armed is not None:
                    pair.answered_since_armed += len(data)
                    if pair.answered_since_armed >= pair.armed.after_bytes:
                        # let part of this chunk through, then cut: a stream broken mid-message
                        dst.sendall(data[: len(data) // 2])
                        self.drops += 1
                        pair.abort()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if not pair.closed:
                pair.close()
            with self._lock:
                self._pairs.discard(pair)

    def close(self) -> None:
        self._stopping = True
        self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
