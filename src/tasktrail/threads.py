"""Background threads that never receive the process's termination signals.

A signal sent to a process is delivered to any thread that does not block it.
Celery's prefork children block SIGTERM in their main thread while they hold the
pool's result-queue lock; if one of our threads took the signal instead, the
child would die holding that lock and hang the whole pool. Threads started here
inherit a mask that blocks those signals, so they always reach the main thread.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

_TERMINATION = {
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
}


def start_daemon(target: Callable[[], object], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _TERMINATION)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread
