"""A small threaded HTTP server that fake providers build on.

It serves real HTTP on 127.0.0.1 (an ephemeral port by default), dispatches to
routes declared by a subclass, keeps a journal of every request, and injects
faults per route and per call count: error statuses, slow answers, dropped
connections, "committed, then the answer was lost", and hooks that change the
fake's state when a given request arrives (to stage races with the client).
A ``latency`` applies to every request, as a distant service would; tests can
wait for a request to arrive (:meth:`FakeServer.wait_for_arrival`) before the
fake has answered it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: Fault kinds understood by :meth:`FakeServer.inject`.
FAULT_KINDS = ("status", "slow", "drop", "commit_then_fail", "commit_then_drop", "hook")


def method_matches(wanted: str, method: str) -> bool:
    """Whether ``method`` is one of ``wanted``: a method, several joined by "|", or "*" for any."""
    return wanted == "*" or method in wanted.split("|")


class BadRequestBodyError(Exception):
    """The request body is not the JSON the route needs."""


@dataclass
class FakeRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    base_url: str

    def json(self) -> Any:
        """Decode the body as JSON, raising BadRequestBodyError when it is not."""
        try:
            return json.loads(self.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError) as err:
            raise BadRequestBodyError(str(err)) from err

    def param(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def body_text(self) -> str:
        """The body decoded for the journal."""
        return self.body.decode("utf-8", errors="replace")


@dataclass
class FakeResponse:
    """What a route answers: a status, a JSON-able or text body and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """A fault applied to matching requests."""

    method: str
    path: re.Pattern
    kind: str
    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: How many matching requests it applies to (None: all of them).
    times: int | None = 1
    #: How many matching requests pass untouched before it applies.
    skip: int = 0
    #: For "hook" faults: called with the request before it is served normally.
    action: Callable[[FakeRequest], None] | None = None

    def matches(self, request: FakeRequest) -> bool:
        """Whether this fault is armed for ``request``."""
        if self.times is not None and self.times <= 0:
            return False
        if not method_matches(self.method, request.method):
            return False
        return bool(self.path.search(request.path))


@dataclass(frozen=True)
class JournalEntry:
    """One recorded request and the status the fake answered (None: connection dropped)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: str
    status: int | None

    def json(self) -> Any:
        """The request body decoded as JSON."""
        return json.loads(self.body or "null")


Route = tuple[str, re.Pattern, Callable[..., FakeResponse]]


class _DropConnectionError(Exception):
    """Internal: close the socket without answering."""


class _HTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server with a listen backlog for many concurrent clients (load tests)."""

    daemon_threads = True
    request_queue_size = 128


class FakeServer:
    """Base class: subclasses declare ``routes`` with :meth:`route` and implement ``authenticate``."""

    name = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.lock = threading.RLock()
        self.journal: list[JournalEntry] = []
        self.faults: list[Fault] = []
        #: (method, path) of every request as it arrives, before any fault, latency or answer.
        self.arrivals: list[tuple[str, str]] = []
        self._arrived = threading.Condition(self.lock)
        #: Seconds every request waits before it is served (and before any fault applies); 0: none.
        self.latency = 0.0
        #: Listing results by query while listings are cached (see cache_listings), else None.
        self.listings: dict[tuple, list] | None = None
        self._httpd = _HTTPServer((host, port), self._handler_class())
        self._thread: threading.Thread | None = None
        self.reset()

    # -- life cycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """Root URL of the server, ending with a slash."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> FakeServer:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"{self.name}-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every request, fault and stored object; no latency; listings are computed afresh again."""
        with self.lock:
            self.journal.clear()
            self.arrivals.clear()
            self.faults.clear()
            self.latency = 0.0
            self.listings = None
            self.reset_state()

    def reset_state(self) -> None:
        """Subclasses clear their stores here."""

    # -- listing cache ---------------------------------------------------------------------------
    def cache_listings(self) -> None:
        """Compute each listing query once (filters and sort, before paging) until a request changes something.

        For benchmarks over a large store that the run does not change: paging through N items then filters
        N items once, instead of N for every page. Changes made through the harness, or to the stored objects
        directly, are not seen by listings already cached; a request that may change something empties the
        cache. A reset turns caching off.
        """
        with self.lock:
            self.listings = {}

    def cached_listing(self, key: tuple, compute: Callable[[], list]) -> list:
        """The items of a listing query: computed now, or reused when listings are cached."""
        if self.listings is None:
            return compute()
        if key not in self.listings:
            self.listings[key] = compute()
        return self.listings[key]

    def changes_nothing(self, request: FakeRequest) -> bool:
        """Whether a request only reads (GET and HEAD here; a fake adds its read-only POST routes)."""
        return request.method in ("GET", "HEAD")

    # -- faults ---------------------------------------------------------------------------------
    def inject(
        self,
        method: str,
        path: str,
        kind: str = "status",
        *,
        status: int = 503,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int | None = 1,
        skip: int = 0,
        action: Callable[[FakeRequest], None] | None = None,
    ) -> Fault:
        """Arm a fault for requests whose method and path (a regex searched in the path) match.

        A "hook" fault calls ``action(request)`` (in the server's thread), then serves the request normally.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if (kind == "hook") != (action is not None):
            raise ValueError("A 'hook' fault needs an action, and only a 'hook' fault takes one")
        fault = Fault(method.upper(), re.compile(path), kind, status, body, headers or {}, delay, times, skip, action)
        with self.lock:
            self.faults.append(fault)
        return fault

    def _take_fault(self, request: FakeRequest) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if not fault.matches(request):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    # -- journal --------------------------------------------------------------------------------
    def requests_to(self, method: str, path_regex: str) -> list[JournalEntry]:
        """Recorded requests with this method (see method_matches) whose path matches the regex."""
        pattern = re.compile(path_regex)
        with self.lock:
            return [e for e in self.journal if method_matches(method.upper(), e.method) and pattern.search(e.path)]

    def arrived(self, method: str, path_regex: str) -> int:
        """How many requests with this method (see method_matches) and a matching path have arrived so far."""
        pattern = re.compile(path_regex)
        with self.lock:
            return sum(1 for m, path in self.arrivals if method_matches(method.upper(), m) and pattern.search(path))

    def wait_for_arrival(self, method: str, path_regex: str, count: int = 1, timeout: float = 10.0) -> None:
        """Block until ``count`` matching requests have arrived (answered or not); TimeoutError after ``timeout``."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self.arrived(method, path_regex) >= count, timeout=timeout):
                raise TimeoutError(
                    f"{self.name}: {count} {method} request(s) to {path_regex!r} did not arrive within {timeout:.0f}s; "
                    f"{self.arrived(method, path_regex)} did"
                )

    def _arrive(self, request: FakeRequest) -> None:
        with self._arrived:
            self.arrivals.append((request.method, request.path))
            self._arrived.notify_all()

    # -- routing --------------------------------------------------------------------------------
    routes: list[Route] = []

    @staticmethod
    def route(method: str, pattern: str):
        """Decorator declaring a route; ``pattern`` is a regex matched against the whole path."""

        def decorate(func):
            func.route = (method, re.compile(f"^{pattern}/?$"))
            return func

        return decorate

    @classmethod
    def _routes(cls) -> list[Route]:
        found = []
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                if callable(attr) and hasattr(attr, "route"):
                    found.append((attr.route[0], attr.route[1], attr))
        return found

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        """Return an error response when the request is not authorised."""
        return None

    def not_found(self, request: FakeRequest) -> FakeResponse:
        """Answer for an unknown route."""
        return FakeResponse(404, {"error": "Not found"})

    def bad_body(self, request: FakeRequest, error: BadRequestBodyError) -> FakeResponse:
        """Answer for a body that is not valid JSON."""
        return FakeResponse(400, {"error": f"Invalid JSON: {error}"})

    def dispatch(self, request: FakeRequest) -> FakeResponse:
        """Authenticate, find the route and call it."""
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        matched_path = False
        for method, pattern, func in self._routes():
            match = pattern.match(request.path)
            if not match:
                continue
            matched_path = True
            if method != request.method:
                continue
            try:
                with self.lock:
                    return func(self, request, **match.groupdict())
            except BadRequestBodyError as err:
                return self.bad_body(request, err)
        if matched_path:
            return FakeResponse(405, {"error": "Method not allowed"})
        return self.not_found(request)

    def _handle(self, request: FakeRequest) -> FakeResponse:
        self._arrive(request)
        if self.latency > 0:
            time.sleep(self.latency)
        if self.listings and not self.changes_nothing(request):
            with self.lock:
                self.listings.clear()
        fault = self._take_fault(request)
        if fault is None:
            return self.dispatch(request)
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return self.dispatch(request)
        if fault.kind == "hook":
            fault.action(request)
            return self.dispatch(request)
        if fault.kind == "drop":
            raise _DropConnectionError
        if fault.kind == "commit_then_drop":
            self.dispatch(request)
            raise _DropConnectionError
        if fault.kind == "commit_then_fail":
            self.dispatch(request)
        return FakeResponse(fault.status, fault.body, dict(fault.headers))

    def _record(self, request: FakeRequest, status: int | None) -> None:
        with self.lock:
            self.journal.append(
                JournalEntry(request.method, request.path, request.query, request.headers, request.body_text, status)
            )

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
                return

            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                host = self.headers.get("Host") or "{}:{}".format(*server._httpd.server_address[:2])
                request = FakeRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                    base_url=f"http://{host}/",
                )
                try:
                    response = server._handle(request)
                except _DropConnectionError:
                    server._record(request, None)
                    self.close_connection = True
                    return
                server._record(request, response.status)
                self._write(response)

            def _write(self, response: FakeResponse):
                headers = dict(response.headers)
                if response.body is None:
                    payload = b""
                elif isinstance(response.body, (bytes, str)):
                    payload = response.body.encode() if isinstance(response.body, str) else response.body
                    headers.setdefault("Content-Type", "text/plain; charset=utf-8")
                else:
                    payload = json.dumps(response.body).encode()
                    headers.setdefault("Content-Type", "application/json; charset=utf-8")
                try:
                    self.send_response(response.status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if payload and self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (e.g. its read timeout fired during a slow fault)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        return Handler
