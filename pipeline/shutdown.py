"""A clean, prompt exit on SIGTERM for the faces (the app and the worker).

``docker stop``, RunPod scaling a worker down and systemd all send SIGTERM,
then SIGKILL after a grace period (docker's is 10 s). In a container the face
runs as PID 1, and the kernel does not deliver a signal to PID 1 that has no
handler installed: without one, SIGTERM is ignored and every stop ends in
SIGKILL. Outside a container Python dies of the signal (exit status -15)
without running ``finally`` blocks or ``atexit`` hooks. Either way the
handlers here turn SIGTERM into an ordinary ``SystemExit(0)``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("shutdown")

# The longest a job that is running when SIGTERM arrives may take to finish
# (and, on RunPod, to have its result posted) before the worker exits anyway;
# kept under docker's default 10 s grace period.
DEFAULT_STOP_GRACE_S = 8.0
# How long an idle-looking worker still watches for a job after SIGTERM. RunPod's
# loop counts a job as running only once its long-poll response is parsed, so a
# job handed out just before the signal looked idle and was lost (tests/test_shutdown.py
# caught it in 2 of 8 runs); 1 s covers that window and keeps the idle exit prompt.
DEFAULT_SETTLE_S = 1.0


def exit_on_sigterm(name: str) -> None:
    """Make SIGTERM raise ``SystemExit(0)`` in the main thread.

    The exception unwinds whatever the main thread is doing (loading models,
    Gradio's ``block_thread`` loop), so ``finally`` blocks and ``atexit`` run
    and the process exits 0. Servers on other threads (Gradio's uvicorn) are
    daemon threads and end with the process. Call it from the main thread.
    """

    def handle(signum, frame):
        # Restore the default first: a second SIGTERM during cleanup ends the process at once.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        print(f"{name}: SIGTERM received, exiting.", file=sys.stderr, flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handle)


def exit_when_idle(
    busy: Callable[[], bool], grace_s: float, name: str, settle_s: float = DEFAULT_SETTLE_S
) -> threading.Thread:
    """Exit the process (status 0) once ``busy()`` is false and ``settle_s`` has
    passed (a job may still be arriving), or after ``grace_s`` at the latest.

    For an event loop that cannot be interrupted from a signal handler, such as
    RunPod's job loop, which on SIGTERM only stops taking jobs and then waits
    up to 90 s for its open long-poll to return. ``os._exit`` is used because
    that loop is still blocked; streams are flushed first.
    """

    def watch() -> None:
        start = time.monotonic()
        deadline, settled = start + grace_s, start + min(settle_s, grace_s)
        while (busy() or time.monotonic() < settled) and time.monotonic() < deadline:
            time.sleep(0.05)
        if busy():
            log.warning("%s: a job was still running %.0f s after SIGTERM; exiting anyway.", name, grace_s)
        print(f"{name}: SIGTERM received, exiting.", file=sys.stderr, flush=True)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)

    thread = threading.Thread(target=watch, name="exit-when-idle", daemon=True)
    thread.start()
    return thread
