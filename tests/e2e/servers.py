"""Tiny stdlib-only HTTP servers for the end-to-end tests and the demo.

* EchoServer: the upstream. Answers 200 with a JSON body describing the request
  it received (method, path, headers, body) and records every request.
* RevocationSource: serves a revocation list with an ETag. Tests steer it at run
  time: body, ETag, status, delay, dropping the connection; it records every
  request's headers. It can be steered in-process (attributes / ``set()``) or
  from another process through ``POST /_control`` (JSON) and read back through
  ``GET /_control``.
* Nginx: Debian's nginx as a child process (not a daemon, one process, its
  own prefix, config, pid and log files in a temp dir) serving a directory
  as static files with nginx's own ``ETag``; its access log records each
  request's status and bytes. Stopped and started again by PID.

All bind 127.0.0.1 only. Command line (for the demo)::

    python tests/e2e/servers.py echo --port 10080
    python tests/e2e/servers.py revocations --port 10081 --file .run/revocations.json

Each prints ``<kind> listening on 127.0.0.1:<port>`` once it is ready (useful
with ``--port 0``) and runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
AUTO = "auto"  # RevocationSource.etag value meaning "derive the ETag from the body"


def headers_to_dict(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Lower-case header names; a name seen once maps to its value, a repeated one to a list."""
    out: dict[str, str | list[str]] = {}
    for name, value in pairs:
        key = name.lower()
        if key not in out:
            out[key] = value
        else:
            prev = out[key]
            out[key] = (prev if isinstance(prev, list) else [prev]) + [value]
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Envoy's upstream connections expect
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server_version = "tokengate-test"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if getattr(self.server, "verbose", False):
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _header_pairs(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers.raw_items()]

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)


class _ServerBase:
    """Common start/stop plumbing: serve_forever in a daemon thread."""

    kind = "server"

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0, verbose: bool = False) -> None:
        self._httpd = _Server((HOST, port), handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._httpd.verbose = verbose  # type: ignore[attr-defined]
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self.kind, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def __enter__(self) -> "_ServerBase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- echo


class _EchoHandler(_BaseHandler):
    def _echo(self) -> None:
        owner: EchoServer = self.server.owner  # type: ignore[attr-defined]
        body = self._read_body()
        pairs = self._header_pairs()
        record = {
            "method": self.command,
            "path": self.path,
            "headers": headers_to_dict(pairs),
            "header_list": [[k.lower(), v] for k, v in pairs],
            "body": body.decode("utf-8", "replace"),
        }
        with owner.lock:
            owner.requests.append(record)
        payload = json.dumps(record).encode()
        self._send(200, payload, {"content-type": "application/json", "x-echo": "1"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _echo


class EchoServer(_ServerBase):
    """Upstream that answers 200 with a JSON description of each request.

    ``requests`` holds one dict per request: ``method``, ``path``, ``headers``
    (lower-cased names; repeated headers as lists), ``header_list`` (raw pairs),
    ``body``.
    """

    kind = "echo"

    def __init__(self, port: int = 0, verbose: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        super().__init__(_EchoHandler, port, verbose)

    @property
    def count(self) -> int:
        """Number of requests received so far."""
        with self.lock:
            return len(self.requests)

    @property
    def last(self) -> dict[str, Any] | None:
        """The most recent request record, or None."""
        with self.lock:
            return self.requests[-1] if self.requests else None

    def reset(self) -> None:
        """Forget the recorded requests."""
        with self.lock:
            self.requests.clear()


# -------------------------------------------------------------------- revocations


class _RevocationHandler(_BaseHandler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        owner: RevocationSource = self.server.owner  # type: ignore[attr-defined]
        if self.path.split("?")[0] == "/_control":
            self._send(200, json.dumps(owner.snapshot()).encode(), {"content-type": "application/json"})
            return
        owner._serve(self)

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        owner: RevocationSource = self.server.owner  # type: ignore[attr-defined]
        body = self._read_body()
        if self.path.split("?")[0] != "/_control":
            self._send(405, b"method not allowed\n")
            return
        try:
            owner.set(**RevocationSource.decode_control(json.loads(body or b"{}")))
        except (ValueError, TypeError) as err:
            self._send(400, f"bad control request: {err}\n".encode())
            return
        self._send(200, json.dumps(owner.snapshot()).encode(), {"content-type": "application/json"})


class RevocationSource(_ServerBase):
    """A revocation list server whose behaviour tests change while it runs.

    Attributes (change them directly, or atomically with ``set()``):

    * ``body``: bytes served (ignored when ``file`` is set: the file is read on
      every request, so edits show at once; a missing file gives 404).
    * ``etag``: ``"auto"`` (default: a quoted hash of the body), ``None`` (no
      ETag header) or a literal header value such as ``'"v7"'``. A request whose
      ``If-None-Match`` equals it gets 304 (only when ``status`` is 200).
    * ``status``: status code to answer with (default 200).
    * ``delay_s``: seconds to wait before answering.
    * ``drop``: close the connection without any answer.
    * ``content_type``: the content-type header sent with the body.

    ``requests`` records each list request: ``path``, ``headers``, ``time``,
    ``answered`` (status sent, or ``"dropped"``).

    Another process steers it through ``POST /_control`` with a JSON object of
    the same names (``body`` as text, or ``body_b64``; ``document`` as a JSON
    value to serialize; ``clear_requests: true``); ``GET /_control`` returns the
    current settings and the recorded requests.
    """

    kind = "revocations"

    def __init__(self, port: int = 0, file: str | Path | None = None, verbose: bool = False) -> None:
        self.body: bytes = b'{"version": 1, "entries": []}'
        self.file: Path | None = Path(file) if file else None
        self.etag: str | None = AUTO
        self.status: int = 200
        self.delay_s: float = 0.0
        self.drop: bool = False
        self.content_type: str = "application/json"
        self.requests: list[dict[str, Any]] = []
        super().__init__(_RevocationHandler, port, verbose)

    # ---- control

    def set(self, **changes: Any) -> None:
        """Change several settings at once (names as the attributes, plus
        ``document`` = a JSON-able value to serve, ``clear_requests`` = bool)."""
        allowed = {"body", "file", "etag", "status", "delay_s", "drop", "content_type"}
        with self.lock:
            if changes.pop("clear_requests", False):
                self.requests.clear()
            if "document" in changes:
                changes["body"] = json.dumps(changes.pop("document")).encode()
            for name, value in changes.items():
                if name not in allowed:
                    raise ValueError(f"unknown setting {name!r}")
                if name == "body" and isinstance(value, str):
                    value = value.encode()
                if name == "file" and value is not None:
                    value = Path(value)
                setattr(self, name, value)

    def set_document(self, document: Any, etag: str | None = AUTO) -> None:
        """Serve ``document`` as JSON with the given ETag (auto by default)."""
        self.set(document=document, etag=etag)

    @staticmethod
    def decode_control(data: dict[str, Any]) -> dict[str, Any]:
        """Turn a JSON control message into keyword arguments for ``set()``."""
        if not isinstance(data, dict):
            raise TypeError("control message must be a JSON object")
        out = dict(data)
        if "body_b64" in out:
            out["body"] = base64.b64decode(out.pop("body_b64"))
        return out

    def snapshot(self) -> dict[str, Any]:
        """Current settings and recorded requests, JSON-able."""
        with self.lock:
            return {
                "body_b64": base64.b64encode(self.body).decode(),
                "file": str(self.file) if self.file else None,
                "etag": self.etag,
                "status": self.status,
                "delay_s": self.delay_s,
                "drop": self.drop,
                "content_type": self.content_type,
                "requests": list(self.requests),
            }

    @property
    def count(self) -> int:
        """Number of list requests received so far."""
        with self.lock:
            return len(self.requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self.lock:
            self.requests.clear()

    # ---- serving

    def current_body(self) -> bytes | None:
        """The bytes that would be served now (None: the file is missing)."""
        if self.file is not None:
            try:
                return self.file.read_bytes()
            except FileNotFoundError:
                return None
        return self.body

    @staticmethod
    def etag_for(body: bytes) -> str:
        """The automatic ETag of a body."""
        return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

    def _serve(self, handler: _BaseHandler) -> None:
        with self.lock:
            status, etag_setting, delay, drop = self.status, self.etag, self.delay_s, self.drop
            content_type = self.content_type
            record: dict[str, Any] = {
                "method": handler.command,
                "path": handler.path,
                "headers": headers_to_dict(handler._header_pairs()),
                "time": time.time(),
                "answered": None,
            }
            self.requests.append(record)
        if delay > 0:
            time.sleep(delay)
        if drop:
            record["answered"] = "dropped"
            handler.close_connection = True
            return  # the server closes the socket: no status line at all
        body = self.current_body()
        if body is None:
            record["answered"] = 404
            handler._send(404, b"no list file\n", {"content-type": "text/plain"})
            return
        etag = self.etag_for(body) if etag_setting == AUTO else etag_setting
        headers = {"content-type": content_type}
        if etag:
            headers["etag"] = etag
        if status == 200 and etag and handler.headers.get("if-none-match") == etag:
            record["answered"] = 304
            handler.send_response(304)
            handler.send_header("etag", etag)
            handler.send_header("content-length", "0")
            handler.end_headers()
            return
        record["answered"] = status
        handler._send(status, body if status == 200 else f"status {status}\n".encode(), headers)


# -------------------------------------------------------------------------- nginx

NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")


def nginx_binary() -> str | None:
    """Debian's nginx (``/usr/sbin`` is often outside PATH), or None."""
    for name in NGINX_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Nginx:
    """nginx serving ``root`` (a directory) on 127.0.0.1:``port``: static
    files, nginx's own ``ETag`` (its hex mtime and size), ``If-None-Match``
    answered with 304.

    It runs in the foreground as one process (``daemon off``, ``master_process
    off``) with everything under its own prefix, so ``stop()`` ends it by PID
    and ``start()`` brings it back on the same port. The access log
    (``access_lines()``) has one line per request: ``msec status bytes_sent
    body_bytes_sent request_length if_none_match etag``.
    """

    LOG_FORMAT = "$msec $status $bytes_sent $body_bytes_sent $request_length \"$http_if_none_match\" \"$sent_http_etag\""

    def __init__(self, root: str | Path, port: int, binary: str, prefix: str | Path | None = None) -> None:
        self.root = Path(root)
        self.port = port
        self.binary = binary
        self.prefix = Path(prefix or tempfile.mkdtemp(prefix="tokengate-nginx-"))
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        self.access_log = self.prefix / "access.log"
        self.error_log = self.prefix / "error.log"
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            f"""daemon off;
master_process off;
worker_processes 1;
pid {self.prefix}/nginx.pid;
error_log {self.error_log} warn;
events {{ worker_connections 256; }}
http {{
    log_format fleet '{self.LOG_FORMAT}';
    access_log {self.access_log} fleet;
    client_body_temp_path {self.prefix}/tmp/body;
    proxy_temp_path {self.prefix}/tmp/proxy;
    default_type application/json;
    keepalive_requests 100000;
    server {{
        listen {HOST}:{port};
        server_name _;
        root {self.root};
        location / {{ }}
    }}
}}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 10.0) -> "Nginx":
        """Start nginx and wait until its port accepts connections."""
        import socket

        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.error_log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.prefix / "stderr.log", "ab"),
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.errors()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nginx not listening on {HOST}:{self.port} after {timeout}s: {self.errors()}")
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop nginx by its PID (TERM, then KILL); idempotent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def errors(self) -> str:
        out = []
        for path in (self.error_log, self.prefix / "stderr.log"):
            try:
                out.append(path.read_text(errors="replace")[-2000:])
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def access_lines(self) -> list[list[str]]:
        """The access log, each line split into its fields (see the class)."""
        try:
            text = self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line.split(" ") for line in text.splitlines() if line]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run one server in the foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", required=True)
    p_echo = sub.add_parser("echo", help="upstream echo server")
    p_echo.add_argument("--port", type=int, default=0)
    p_echo.add_argument("-v", "--verbose", action="store_true")
    p_rev = sub.add_parser("revocations", help="revocation list source")
    p_rev.add_argument("--port", type=int, default=0)
    p_rev.add_argument("--file", help="serve this file (re-read on every request)")
    p_rev.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    server: _ServerBase
    if args.kind == "echo":
        server = EchoServer(args.port, verbose=args.verbose)
    else:
        server = RevocationSource(args.port, file=args.file, verbose=args.verbose)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"{server.kind} listening on {HOST}:{server.port}", flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
