"""Loopback servers for tests: a free port, and the real Gradio app launched
the way ``app.main`` launches it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(pipeline=None, auth: tuple[str, str] | None = None) -> Iterator[str]:
    """The real Gradio app on a free loopback port, launched as ``app.main``
    launches it (upload cap, guard middleware); yields its URL, closes it after."""
    import app

    demo = app.build_demo(pipeline)
    port = free_port()
    demo.launch(
        prevent_thread_lock=True,
        show_error=True,
        server_name="127.0.0.1",
        server_port=port,
        quiet=True,
        **app.launch_kwargs(auth),
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
