"""Hostile inputs and peers, for the tests and the benches that probe the same seams.

``tests/test_hardening.py`` asserts on them; ``bench/hardening.py`` and
``bench/fuzz_handler.py`` measure with them, so a bench never imports a test
module. Here: the handler's contract for any response (:func:`check_response`),
hypothesis strategies for any JSON in any field (:func:`payloads`), shape
backends that fail on cue, bucket endpoints on loopback that never answer or
answer 500, and damaged weights. Everything binds to 127.0.0.1 and stops after.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BUCKET_ENV = ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY", "BUCKET_NAME")


def bucket_env(endpoint: str) -> dict[str, str]:
    """The worker's bucket variables for ``endpoint``, with throwaway keys and bucket ``models``."""
    return dict(zip(BUCKET_ENV, (endpoint, "k", "s", "models"), strict=True))


# -- the handler's contract -------------------------------------------------------------


def sendable(response: Any) -> None:
    """What RunPod's SDK does with a result (rp_http: ensure_ascii=False, then UTF-8); raises if it cannot."""
    json.dumps(response, ensure_ascii=False).encode("utf-8")
    json.dumps(response).encode("utf-8")


def is_sendable(response: Any) -> bool:
    try:
        sendable(response)
    except (UnicodeEncodeError, ValueError):
        return False
    return True


def one_sentence(message: str) -> None:
    """An error the faces can show: one line, bounded, no traceback."""
    from pipeline.errors import MAX_MESSAGE_CHARS

    assert isinstance(message, str) and 0 < len(message) <= MAX_MESSAGE_CHARS, (len(message), message[:200])
    assert "\n" not in message and "Traceback" not in message


def check_response(response: Any) -> None:
    """The handler's contract, for any input: a GLB or one bounded sentence, always sendable."""
    assert isinstance(response, dict)
    sendable(response)
    if "error" in response:
        one_sentence(response["error"])
    else:
        assert response["format"] == "glb" and base64.b64decode(response["model_base64"])[:4] == b"glTF"


# -- any JSON in any field (hypothesis strategies) --------------------------------------


def json_values():
    """JSON values with lone surrogates, integers of thousands of digits, NaN and long strings."""
    from hypothesis import strategies as st

    surrogate = st.integers(0xD800, 0xDFFF).map(chr)
    text = st.text(alphabet=st.one_of(st.characters(), surrogate), max_size=80)
    huge = st.one_of(
        st.integers(),
        st.integers(min_value=10**300, max_value=10**5000),
        st.integers(min_value=-(10**5000), max_value=-(10**300)),
        st.just(10**4299),
    )
    scalars = st.one_of(
        st.none(), st.booleans(), huge, st.floats(allow_nan=True, allow_infinity=True), text, st.just("x" * 5000)
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
        max_leaves=8,
    )


def payloads(image_b64: str):
    """Request inputs: real and made-up field names, valid choices or any JSON, the image or any JSON.

    A third of them ask for a small untextured model, so valid requests stay fast.
    """
    from hypothesis import strategies as st

    from pipeline.options import FIELDS, FIELDS_BY_NAME

    surrogate = st.integers(0xD800, 0xDFFF).map(chr)
    names = st.one_of(
        st.sampled_from([f.name for f in FIELDS]), st.text(alphabet=st.one_of(st.characters(), surrogate), max_size=30)
    )
    good = {name: st.sampled_from(spec.choices) for name, spec in FIELDS_BY_NAME.items() if spec.choices}

    def value_for(name):
        return st.one_of(json_values(), good.get(name, json_values()))

    fields = names.flatmap(lambda name: st.tuples(st.just(name), value_for(name)))
    image = st.one_of(st.just(image_b64), json_values())
    return st.tuples(image, st.lists(fields, max_size=5)).map(
        lambda pair: (
            {"image": pair[0], **dict(pair[1]), "max_faces": 1000, "generate_texture": False}
            if len(pair[1]) % 3 == 0
            else {"image": pair[0], **dict(pair[1])}
        )
    )


# -- shape backends for the draft slot ------------------------------------------------------


class RaisingBackend:
    """Raises ``exc`` from every ``generate`` and counts the calls (0 proves no model ran)."""

    name = "draft"

    def __init__(self, exc: BaseException):
        self.exc, self.calls = exc, 0

    def generate(self, image, options, progress):
        self.calls += 1
        raise self.exc


class PlainShapeBackend:
    """A shape backend whose mesh comes back untextured, so texturing runs."""

    name = "draft"

    def generate(self, image, options, progress):
        import trimesh

        from pipeline.types import ShapeOutput

        return ShapeOutput(trimesh.creation.icosphere(subdivisions=2), model="draft", textured=False)


# -- bucket endpoints that misbehave --------------------------------------------------------


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A loopback socket that accepts connections and never answers; yields its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


@contextmanager
def failing_endpoint() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that answers every request with an S3-style 500; yields its URL
    and the list of request methods it received."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _fail(self):
            hits.append(self.command)
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = b"<Error><Code>InternalError</Code><Message>boom</Message></Error>"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PUT = do_POST = do_GET = do_HEAD = _fail

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- damaged weights ------------------------------------------------------------------------


def corrupt_tensor_bytes(path: Path) -> None:
    """Overwrite a safetensors file's tensor data with garbage, keeping its size and header."""
    import numpy as np

    data = bytearray(path.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    start = 8 + header_len
    data[start:] = np.random.default_rng(0).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
