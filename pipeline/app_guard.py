"""What keeps the Gradio app safe to put on a network: an ASGI middleware in
front of Gradio's own routes, plus the app's disk and result-age rules.

With ``HY3D_AUTH`` set, Gradio still embeds the whole API description
(``gradio_api_info``) in the unauthenticated login page, serves FastAPI's
``/openapi.json`` to anyone, and takes any number of wrong logins. The
middleware (:class:`AppGuard`) closes those:

* an unauthenticated client gets only what the login page needs (the page,
  with ``gradio_api_info`` blanked, its static assets, and ``POST /login``);
  every other route answers 401;
* failed logins are counted per client address (:class:`LoginThrottle`);
  past the limit ``/login`` answers 429 with ``Retry-After`` until the
  window has passed, even for the right password;
* an upload over ``HY3D_MAX_IMAGE_BYTES`` (Gradio's ``max_file_size``) gets
  one sentence naming the limit, and an upload onto a full disk one sentence
  saying so, without a server path.

It is plain ASGI (no Starlette base class), so it sees Gradio's streaming
responses without buffering them; only the small login page is rewritten.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import PipelineError

DEFAULT_LOGIN_ATTEMPTS = 5
DEFAULT_LOGIN_WINDOW_S = 60.0
DEFAULT_RESULT_TTL_S = 3600
# The app refuses to start a job with less free space than this in
# GRADIO_TEMP_DIR: a textured GLB at the largest settings is ~40 MB.
MIN_FREE_DISK_BYTES = 64 * 1024 * 1024
# An upload is taken only with its own size plus this much free.
UPLOAD_HEADROOM_BYTES = 1024 * 1024
DISK_FULL_MESSAGE = "The server is out of disk space; try again later or tell the operator."
_MAX_TRACKED_CLIENTS = 10000

# What the login page loads before anyone has logged in.
_PUBLIC_EXACT = frozenset(
    {
        "/",
        "/login",
        "/login/",
        "/logout",
        "/favicon.ico",
        "/theme.css",
        "/gradio_api/theme.css",
        "/robots.txt",
        "/manifest.json",
        "/pwa_icon",
        "/gradio_api/login_check",
        "/gradio_api/login_check/",
        # launch() calls this itself, without a login; it returns a bare true.
        "/gradio_api/startup-events",
    }
)
_PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon/")
_API_INFO_MARKER = b"<script>window.gradio_api_info = "
_EMPTY_API_INFO = b'{"named_endpoints":{},"unnamed_endpoints":{}}'


class DiskFullError(PipelineError):
    """GRADIO_TEMP_DIR has no room for an upload or a result."""


def temp_root() -> Path:
    import tempfile

    return Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir())


def free_bytes(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free


def require_free_disk(path: Path | None = None, needed: int = MIN_FREE_DISK_BYTES) -> None:
    """Raise :class:`DiskFullError` (one sentence, no path) when ``path`` is nearly full."""
    if free_bytes(path or temp_root()) < needed:
        raise DiskFullError(DISK_FULL_MESSAGE)


def is_disk_full(exc: BaseException) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def sweep_old_files(folder: Path, max_age_s: float, now: float | None = None) -> int:
    """Delete files under ``folder`` older than ``max_age_s``; returns how many."""
    now = time.time() if now is None else now
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and now - path.stat().st_mtime > max_age_s:
                path.unlink()
                removed += 1
        except OSError:  # another sweep or request removed it first
            continue
    return removed


class Sweeper:
    """Deletes result files older than the TTL every ``interval`` seconds on a
    daemon thread (Gradio's ``delete_cache`` covers its own cache only)."""

    def __init__(self, folder: Path, ttl_s: float, interval_s: float | None = None) -> None:
        self.folder, self.ttl_s = folder, ttl_s
        self.interval_s = interval_s if interval_s is not None else max(1.0, min(ttl_s / 2, 300.0))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sweeper:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="result-sweeper", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            sweep_old_files(self.folder, self.ttl_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class LoginThrottle:
    """Failed logins per client address in a sliding window. After
    ``attempts`` failures within ``window_s`` the address is refused until the
    oldest of them leaves the window. Thread-safe; remembers at most
    ``_MAX_TRACKED_CLIENTS`` addresses (least recently seen dropped first)."""

    def __init__(
        self,
        attempts: int = DEFAULT_LOGIN_ATTEMPTS,
        window_s: float = DEFAULT_LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts, self.window_s, self.clock = attempts, window_s, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client)
        if failures is None:
            return deque()
        while failures and now - failures[0] >= self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[client]
        return failures

    def retry_after(self, client: str) -> int:
        """Seconds the client must wait before trying again; 0 when it may try now."""
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            if len(failures) < self.attempts:
                return 0
            return max(1, math.ceil(failures[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            failures = self._failures.setdefault(client, deque())
            failures.append(now)
            while len(failures) > self.attempts:
                failures.popleft()
            self._failures.move_to_end(client)
            while len(self._failures) > _MAX_TRACKED_CLIENTS:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def _is_public(path: str) -> bool:
    return path in _PUBLIC_EXACT or path.startswith(_PUBLIC_PREFIXES)


def _strip_api_info(body: bytes) -> bytes:
    """The login page without the embedded API description."""
    start = body.find(_API_INFO_MARKER)
    if start < 0:
        return body
    value_start = start + len(_API_INFO_MARKER)
    end = body.find(b";</script>", value_start)
    if end < 0:
        return body
    # An empty description, not null: with null the page fetches /info itself and stalls on the 401.
    return body[:value_start] + _EMPTY_API_INFO + body[end:]


async def _send_text(
    send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None, as_json: bool = False
) -> None:
    body = json.dumps({"detail": message}).encode() if as_json else message.encode()
    kind = b"application/json" if as_json else b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AppGuard:
    """ASGI middleware: auth gate, login throttle, upload size and disk sentences.

    Passed to Gradio through ``launch(app_kwargs={"middleware": [...]})``, so
    it wraps every route Gradio serves. ``auth`` says whether HY3D_AUTH is
    set; without it only the upload rules apply.
    """

    def __init__(
        self,
        app: Any,
        *,
        auth: bool,
        throttle: LoginThrottle | None = None,
        max_upload_bytes: int | None = None,
        temp_dir: Callable[[], Path] = temp_root,
    ) -> None:
        self.app = app
        self.auth = auth
        self.throttle = throttle or LoginThrottle()
        self.max_upload_bytes = max_upload_bytes
        self.temp_dir = temp_dir

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        client = (scope.get("client") or ("unknown", 0))[0]
        if self.auth and path.rstrip("/") == "/login" and method == "POST":
            return await self._login(scope, receive, send, client)
        authenticated = not self.auth or self._authenticated(scope)
        if not authenticated:
            if scope["type"] != "http" or not _is_public(path):
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                return await _send_text(send, 401, "Not authenticated; log in first.", as_json=True)
            if path == "/" and method in ("GET", "HEAD"):
                return await self._login_page(scope, receive, send)
        if path.endswith("/upload") and method == "POST":
            return await self._upload(scope, receive, send)
        return await self.app(scope, receive, send)

    # -- auth --
    @staticmethod
    def _authenticated(scope) -> bool:
        app = scope.get("app")
        tokens = getattr(app, "tokens", None)
        cookie_id = getattr(app, "cookie_id", None)
        if tokens is None or cookie_id is None:
            return False
        cookies = _cookies(scope)
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            token = cookies.get(name)
            if token and token in tokens:
                return True
        return False

    async def _login(self, scope, receive, send, client: str) -> None:
        wait = self.throttle.retry_after(client)
        if wait:
            return await _send_text(
                send,
                429,
                f"Too many failed logins from this address; try again in {wait} s.",
                headers=[(b"retry-after", str(wait).encode())],
                as_json=True,
            )
        status: dict[str, int] = {}

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        code = status.get("code", 500)
        if code in (400, 401, 403):
            self.throttle.failed(client)
        elif 200 <= code < 300:
            self.throttle.succeeded(client)

    async def _login_page(self, scope, receive, send) -> None:
        """Gradio's login page, minus the API description it embeds."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def collect(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = _strip_api_info(b"".join(chunks))
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                if scope.get("method") != "HEAD":
                    headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, collect)

    # -- uploads --
    async def _upload(self, scope, receive, send) -> None:
        limit = self.max_upload_bytes
        length = _header(scope, b"content-length")
        needed = UPLOAD_HEADROOM_BYTES + (int(length) if length and length.isdigit() else limit or 0)
        try:
            full = free_bytes(self.temp_dir()) < needed
        except OSError:
            full = True
        if full:  # before Gradio writes a truncated file it would then fail to read
            return await _send_text(send, 507, DISK_FULL_MESSAGE)
        if limit is not None and length is not None and length.isdigit() and int(length) > limit + 64 * 1024:
            # The multipart body is far over the cap: refuse before reading it.
            return await _send_text(send, 413, upload_limit_message(limit))
        replaced: dict[str, bool] = {}

        async def rewrite(message) -> None:
            # Gradio's own 413 ("File size exceeded maximum allowed size of N bytes.") becomes ours.
            if message["type"] == "http.response.start" and message["status"] == 413 and limit is not None:
                replaced["yes"] = True
                return await _send_text(send, 413, upload_limit_message(limit))
            if replaced:
                return None
            await send(message)

        try:
            await self.app(scope, receive, rewrite)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            await _send_text(send, 507, DISK_FULL_MESSAGE)


def upload_limit_message(limit: int) -> str:
    return (
        f"The upload is over the {limit} byte ({limit / (1024 * 1024):.1f} MiB) image limit "
        "set by HY3D_MAX_IMAGE_BYTES; send a smaller image."
    )


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _cookies(scope) -> dict[str, str]:
    from http.cookies import SimpleCookie

    raw = _header(scope, b"cookie")
    if not raw:
        return {}
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # noqa: BLE001 - a malformed cookie header is no login
        return {}
    return {key: morsel.value for key, morsel in jar.items()}
