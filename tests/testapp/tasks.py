"""Tasks the integration tests run in a real worker: one per behaviour under test."""

import threading
import time
from pathlib import Path
from typing import Any

import celery
from celery import shared_task

import tasktrail


@shared_task
def add(x: int, y: int) -> int:
    return x + y


@shared_task
def noop() -> None:
    return None


@shared_task(bind=True, max_retries=3)
def flaky(self: Any, fail_times: int, countdown: float = 0.2) -> str:
    if self.request.retries < fail_times:
        try:
            raise ConnectionError(f"attempt {self.request.retries + 1} failed")
        except ConnectionError as exc:
            raise self.retry(exc=exc, countdown=countdown) from exc
    return f"ok after {self.request.retries + 1} attempts"


@shared_task
def boom(message: str) -> None:
    raise ValueError(message)


@shared_task
def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@shared_task
def reports_progress(steps: int, pause: float = 0.05) -> int:
    for i in range(1, steps + 1):
        time.sleep(pause)
        tasktrail.progress(i, steps, f"step {i} of {steps}")
    return steps


@shared_task(bind=True)
def celery_progress_style(self: Any, steps: int) -> str:
    for i in range(1, steps + 1):
        self.update_state(state="PROGRESS", meta={"current": i, "total": steps})
        time.sleep(0.05)
    return "done"


@shared_task(bind=True)
def holds_progress(self: Any, seconds: float) -> str:
    """Half done through ``update_state``, held there: long enough to be read mid-run."""
    self.update_state(state="PROGRESS", meta={"current": 1, "total": 2, "description": "half"})
    time.sleep(seconds)
    return "done"


@shared_task
def returns_set() -> Any:
    return {1, 2, 3}


@shared_task
def returns_huge(size: int) -> str:
    return "x" * size


# Fault tests (tests/integration/test_lost.py, test_faults.py).


@shared_task
def touch_after(path: str, seconds: float = 0) -> str:
    """Leaves a file behind when it really ran to its end: proof independent of the store."""
    time.sleep(seconds)
    Path(path).write_text("ran")
    return path


@shared_task(acks_late=True)
def sleepy_acks_late(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@shared_task(retry_on_worker_lost=True, default_retry_delay=0)
def sleepy_retry_on_lost(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@shared_task(retry_on_worker_lost=True, default_retry_delay=0)
def counts_runs(path: str, seconds: float) -> str:
    """Adds a line to ``path`` each time it starts: how often it really ran, store aside."""
    with Path(path).open("a") as f:
        f.write("ran\n")
    time.sleep(seconds)
    return "woke"


@shared_task(bind=True, tasktrail_retry={"max_attempts": 3, "backoff": 0.5, "retry_on": [OSError]})
def unreliable(self: Any, fail_times: int) -> str:
    if self.request.retries < fail_times:
        raise OSError(f"disk {self.request.retries + 1} unavailable")
    return f"ok on attempt {self.request.retries + 1}"


@shared_task(time_limit=1)
def over_hard_limit() -> None:
    time.sleep(10)


@shared_task(soft_time_limit=0.5)
def over_soft_limit() -> None:
    time.sleep(10)


class HoldsAHandle(Exception):
    """An exception whose argument is no JSON value (a lock)."""


class UnreadableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot describe itself")


@shared_task
def raises_unserialisable() -> None:
    raise HoldsAHandle(threading.Lock())


@shared_task
def raises_unreadable() -> None:
    raise UnreadableError()


# Live status (tests/web, tests/integration/test_live.py).


@shared_task(tasktrail_show_result=False)
def keeps_result_private() -> dict[str, str]:
    return {"secret": "only staff see this"}


@shared_task
def progress_flood(calls: int) -> float:
    """Reports progress ``calls`` times as fast as it can; returns the calls per second."""
    began = time.perf_counter()
    for done in range(1, calls + 1):
        tasktrail.progress(done, calls)
    return calls / (time.perf_counter() - began)


@shared_task
def progress_from_threads() -> str:
    """Threads it starts report progress: one plainly, one through a captured reporter."""
    errors: list[BaseException] = []

    def run(report: Any, current: int, message: str) -> None:
        try:
            report(current, 2, message)
        except BaseException as exc:
            errors.append(exc)

    for report, current, message in (
        (tasktrail.progress, 1, "plain"),
        (tasktrail.reporter(), 2, "captured"),
    ):
        thread = threading.Thread(target=run, args=(report, current, message))
        thread.start()
        thread.join()
    if errors:
        raise errors[0]
    return "reported"


@shared_task
def reports(calls: int, current: Any = None, **meta: Any) -> int:
    """Reports ``calls`` times in a tight loop (or ``current``, once), with ``meta``."""
    for done in range(1, calls + 1):
        value = done if current is None else current
        tasktrail.progress(value, calls, f"{done} of {calls}", **meta)
    return calls


# Poison values (tests/integration/test_bad_input.py): each must be recorded without
# stopping the recording of other tasks.


@shared_task
def nul_progress() -> str:
    tasktrail.progress(1, 2, "half\x00way", note="a\x00b")
    return "done"


@shared_task(name="tests.testapp.tasks." + "long_name_" * 30)
def long_named() -> int:
    return 1


#: An exception whose type name is longer than the column holding it.
LongError = type("LongError" + "E" * 300, (Exception,), {"__module__": __name__})


@shared_task
def raises_long_type() -> None:
    raise LongError("too long a type")


@shared_task(bind=True)
def bad_state(self: Any) -> None:
    self.update_state(state="A" * 50 + "\n")


@shared_task
def huge_texts(size: int) -> str:
    """Reports a message and meta of ``size`` characters each, then fails with one."""
    tasktrail.progress(1, 2, "m" * size, blob="x" * size)
    time.sleep(0.3)
    raise ValueError("e" * size)


_groups: dict[str, threading.Barrier] = {}


@shared_task
def progress_alongside(group: str, parties: int, index: int, calls: int, via: str) -> str:
    """One of ``parties`` tasks reporting at once in a threads pool (they wait for each other).

    ``via``: ``progress`` or ``reporter`` in the task's thread, ``thread`` a reporter
    called from a thread the task starts.
    """
    _groups.setdefault(group, threading.Barrier(parties)).wait(30)
    report = tasktrail.progress if via == "progress" else tasktrail.reporter()

    def run() -> None:
        for done in range(1, calls + 1):
            report(done, calls, f"task {index}")

    if via == "thread":
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    else:
        run()
    return "reported"


@shared_task(ignore_result=True)
def add_ignoring_result(x: int, y: int) -> int:
    """Declared ``ignore_result``: Celery's view of it stays PENDING (tests/integration)."""
    return x + y


@shared_task
def total(values: list[int]) -> int:
    """A chord's callback: the sum of its header's results."""
    return sum(values)


@shared_task
def fails_on(x: int, bad: int) -> int:
    """``x`` doubled, unless it is ``bad``: one failing member of a group."""
    if x == bad:
        raise ValueError(f"{x} is the bad one")
    return x * 2


class _HangsOnceAfterReturning(celery.Task):
    """Celery calls ``on_success`` after it stored the result and counted the task in its
    chord, and before it acknowledges an ``acks_late`` message: hanging there on the first
    run leaves the test a worker to kill between the two. Each run adds a line to the
    file ``args[1]`` once it has returned."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        path = Path(args[1])
        with path.open("a") as f:
            f.write("returned\n")
        if path.read_text().count("returned") == 1:
            time.sleep(120)


@shared_task(base=_HangsOnceAfterReturning, acks_late=True)
def returns_then_hangs_once(x: int, path: str) -> int:
    """``x``; its first run hangs after returning, its message not yet acknowledged."""
    return x


@shared_task
def returns_once_released(path: str, value: int, timeout: float = 60) -> int:
    """``value``, once the file ``path`` exists: a header task the test holds."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)
    return value
