"""Clients for requests that ``requests`` and ``http.client`` cannot send.

* ``h2_request``: one HTTP/2 request over cleartext (prior knowledge, as
  Envoy's ``codec_type: AUTO`` accepts it) with the header list exactly as
  given: any ``:authority``, a ``host`` beside it, pseudo-headers left out or
  doubled, a body in DATA frames, request trailers (with or without a body),
  CONNECT. The ``h2`` package's checks of outgoing headers are off, so
  nothing is fixed up on the way.
* ``http1_exchange``: raw HTTP/1.1 bytes on a socket (chunked bodies,
  trailers, ``Expect: 100-continue``, any ``Host`` line), the answer read and
  parsed: interim 1xx responses and the final one.

Both return a ``Reply`` and never raise for what the server does (a reset
stream, a closed connection, no answer in time): those are part of the reply.
Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

HOST = "127.0.0.1"

Headers = list[tuple[str, str]]


@dataclass
class Reply:
    """What came back for one request.

    ``status`` is None when no final response arrived: then ``reset`` (the
    HTTP/2 RST_STREAM error code), ``goaway`` (the GOAWAY error code),
    ``closed`` (the peer closed the connection) or ``timed_out`` says why.
    ``interim`` holds the status of every 1xx response before the final one.
    """

    status: int | None = None
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    trailers: Headers = field(default_factory=list)
    interim: list[int] = field(default_factory=list)
    reset: int | None = None
    goaway: int | None = None
    closed: bool = False
    timed_out: bool = False

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def describe(self) -> str:
        """One line for assertion messages."""
        if self.status is not None:
            return f"{self.status} {self.body[:300]!r}"
        why = [
            f"reset {self.reset}" if self.reset is not None else "",
            f"goaway {self.goaway}" if self.goaway is not None else "",
            "closed" if self.closed else "",
            "timed out" if self.timed_out else "",
        ]
        return "no response (" + ", ".join(w for w in why if w) + ")"


# ---------------------------------------------------------------------- HTTP/2


def _h2_config() -> h2.config.H2Configuration:
    return h2.config.H2Configuration(
        client_side=True,
        header_encoding="utf-8",
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )


def h2_request(
    port: int,
    headers: Iterable[tuple[str, str]],
    body: bytes | str | None = None,
    trailers: Iterable[tuple[str, str]] | None = None,
    *,
    timeout: float = 5.0,
) -> Reply:
    """Send one HTTP/2 request on a fresh cleartext connection and read its answer.

    ``headers`` go out in one HEADERS frame, in order, as given (pseudo-headers
    included: nothing is added). END_STREAM goes on the last frame: the
    headers when there is neither a body nor trailers, else the last DATA
    frame, else the trailers' HEADERS frame. ``body=b""`` sends no DATA frame.
    """
    data = body.encode() if isinstance(body, str) else (body or b"")
    trailer_list = list(trailers) if trailers is not None else None
    sock = socket.create_connection((HOST, port), timeout=timeout)
    conn = h2.connection.H2Connection(config=_h2_config())
    reply = Reply()
    deadline = time.monotonic() + timeout
    done = False

    def flush() -> None:
        out = conn.data_to_send()
        if out:
            sock.sendall(out)

    def pump() -> None:
        """Read once and handle the events; sets ``done`` when the stream is over."""
        nonlocal done
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            reply.timed_out = True
            done = True
            return
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            reply.timed_out = True
            done = True
            return
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            reply.closed = True
            done = True
            return
        try:
            events = conn.receive_data(chunk)
        except h2.exceptions.ProtocolError:
            reply.closed = True
            done = True
            return
        for event in events:
            if isinstance(event, h2.events.InformationalResponseReceived):
                reply.interim.append(int(dict(event.headers)[":status"]))
            elif isinstance(event, h2.events.ResponseReceived):
                hdrs = list(event.headers)
                reply.status = int(dict(hdrs)[":status"])
                reply.headers = [(k, v) for k, v in hdrs if not k.startswith(":")]
            elif isinstance(event, h2.events.DataReceived):
                reply.body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                reply.trailers = list(event.headers)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                done = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                reply.reset = int(event.error_code)
                done = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                reply.goaway = int(event.error_code)
                done = True
        try:
            flush()
        except OSError:
            pass

    try:
        conn.initiate_connection()
        flush()
        stream_id = conn.get_next_available_stream_id()
        last_is_headers = not data and trailer_list is None
        conn.send_headers(stream_id, list(headers), end_stream=last_is_headers)
        flush()
        sent = 0
        while sent < len(data) and not done:
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0:
                pump()
                continue
            piece = data[sent : sent + window]
            sent += len(piece)
            conn.send_data(stream_id, piece, end_stream=sent == len(data) and trailer_list is None)
            flush()
        if trailer_list is not None and not done:
            conn.send_headers(stream_id, trailer_list, end_stream=True)
            flush()
        while not done:
            pump()
    except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, BrokenPipeError, ConnectionResetError):
        # The server ended the stream or the connection while we were
        # still sending: read what it said, if anything.
        while not done:
            pump()
    finally:
        try:
            conn.close_connection()
            sock.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass
        sock.close()
    return reply


def h2_headers(method: str, path: str | None, authority: str | None, *extra: tuple[str, str], scheme: str | None = "http") -> Headers:
    """A request header list: the pseudo-headers that are not None, then ``extra``."""
    out: Headers = [(":method", method)]
    if scheme is not None:
        out.append((":scheme", scheme))
    if authority is not None:
        out.append((":authority", authority))
    if path is not None:
        out.append((":path", path))
    return out + list(extra)


# -------------------------------------------------------------------- HTTP/1.1


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = b""
        self.eof = False

    def _fill(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError from e
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out


def _read_head(r: _Reader) -> tuple[int, Headers]:
    status_line = r.line()
    parts = status_line.split(b" ", 2)
    status = int(parts[1])
    headers: Headers = []
    while True:
        line = r.line()
        if not line:
            return status, headers
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1").strip().lower(), value.decode("latin-1").strip()))


def read_http1_response(r: _Reader, reply: Reply, method: str = "GET") -> None:
    """Reads interim responses and the final one into ``reply``."""
    while True:
        status, headers = _read_head(r)
        if 100 <= status < 200 and status != 101:
            reply.interim.append(status)
            return_after_interim = getattr(r, "stop_after_interim", False)
            if return_after_interim:
                return
            continue
        reply.status, reply.headers = status, headers
        break
    lookup = {k: v for k, v in headers}
    if method == "HEAD" or status in (101, 204, 304):
        return
    if "chunked" in lookup.get("transfer-encoding", "").lower():
        while True:
            size = int(r.line().split(b";")[0], 16)
            if size == 0:
                while r.line():
                    pass
                return
            reply.body += r.exactly(size)
            r.line()
    elif "content-length" in lookup:
        reply.body = r.exactly(int(lookup["content-length"]))
    else:
        reply.body = r.rest()


def http1_exchange(
    port: int,
    head: bytes,
    body: bytes = b"",
    *,
    method: str = "GET",
    wait_for_continue: bool = False,
    timeout: float = 5.0,
) -> Reply:
    """Send ``head`` (request line and header lines, ending with the blank
    line) and then ``body`` verbatim on a fresh connection; read the answer.

    With ``wait_for_continue`` the body is held until a ``100 Continue``
    arrives (a client of ``Expect: 100-continue``); if the final answer comes
    first, the body is never sent."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    reply = Reply()
    r = _Reader(sock, time.monotonic() + timeout)
    try:
        sock.sendall(head)
        if wait_for_continue:
            r.stop_after_interim = True  # type: ignore[attr-defined]
            read_http1_response(r, reply, method)
            r.stop_after_interim = False  # type: ignore[attr-defined]
            if reply.status is not None:
                return reply
        if body:
            sock.sendall(body)
        if reply.status is None:
            read_http1_response(r, reply, method)
    except TimeoutError:
        reply.timed_out = True
    except (EOFError, BrokenPipeError, ConnectionResetError):
        reply.closed = True
    except (ValueError, IndexError):
        reply.closed = True  # not an HTTP response at all
    finally:
        sock.close()
    return reply


def http1_head(method: str, target: str, headers: Iterable[tuple[str, str]], host: str | None = "api.test") -> bytes:
    """``METHOD target HTTP/1.1`` and the header lines, ``Host`` first
    (None: no Host line at all), ending with the blank line."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(body: bytes, trailers: Iterable[tuple[str, str]] = (), size: int = 1000) -> bytes:
    """``body`` in chunks of ``size`` bytes, the last chunk, then ``trailers`` and the blank line."""
    out = b""
    for i in range(0, len(body), size):
        piece = body[i : i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers:
        out += f"{k}: {v}\r\n".encode("latin-1")
    return out + b"\r\n"
