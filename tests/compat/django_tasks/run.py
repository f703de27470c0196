"""Side-by-side checks of django.tasks backends on Celery (Redis broker, PostgreSQL).

CMP_BACKEND=<tasktrail|celery|fennel> python run.py: starts its own workers, prints one
JSON line per check."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import django

django.setup()

from cmpapp import tasks  # noqa: E402
from django.tasks import default_task_backend  # noqa: E402

KIND = os.environ["CMP_BACKEND"]
LOG = tasks.LOG
WORKERS = []


def worker(name, queue, concurrency=2):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = open(os.path.join(os.path.dirname(LOG), f"{KIND}-{name}.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celeryapp",
            "worker",
            "-Q",
            queue,
            f"--concurrency={concurrency}",
            f"--hostname={KIND}-{name}@cmp",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    from celeryapp import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not app.control.ping([f"{KIND}-{name}@cmp"], timeout=0.5):
        pass
    WORKERS.append(proc)
    return proc


def show(check, value):
    print(json.dumps({"backend": KIND, "check": check, "value": value}, default=str), flush=True)


def get(result_id):
    try:
        return default_task_backend.get_result(result_id)
    except Exception as exc:
        return exc


def wait_finished(result, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = get(result.id)
        if not isinstance(found, Exception) and found.is_finished:
            return found
        time.sleep(0.1)
    return get(result.id)


def finished_seen(result_id):
    time.sleep(0.5)
    try:
        lines = Path(LOG).read_text().splitlines()
    except FileNotFoundError:
        return None
    return [line.split()[1] for line in lines if line.split()[0] == result_id]


def main():
    from celeryapp import app

    app.control.purge()
    # fennel sends Django's "default" queue as the Celery queue "default".
    worker("main", f"cmp_{KIND},default" if KIND == "fennel" else f"cmp_{KIND}")

    never = get(str(uuid.uuid4()))
    show(
        "never-sent id", type(never).__name__ if isinstance(never, Exception) else str(never.status)
    )

    r = tasks.slow_add.enqueue(2, 3)
    seen = [str(r.status)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = get(r.id)
        if isinstance(found, Exception):
            if type(found).__name__ != seen[-1]:
                seen.append(type(found).__name__)
            time.sleep(0.05)
            continue
        if str(found.status) != seen[-1]:
            seen.append(str(found.status))
        if found.is_finished:
            break
        time.sleep(0.05)
    show("statuses seen", " -> ".join(seen))
    done = get(r.id)
    show(
        "return_value",
        done.return_value if not isinstance(done, Exception) and done.is_finished else repr(done),
    )
    show(
        "timestamps (enqueued, started, finished, last_attempted)",
        [
            done.enqueued_at is not None,
            done.started_at is not None,
            done.finished_at is not None,
            done.last_attempted_at is not None,
        ]
        if not isinstance(done, Exception)
        else repr(done),
    )
    show(
        "worker_ids / attempts",
        [done.worker_ids, done.attempts] if not isinstance(done, Exception) else repr(done),
    )
    show(
        "get_result == enqueued (idle queue)",
        (lambda e: get(e.id) == e)(tasks.add.using(queue_name=f"idle_{KIND}").enqueue(1, 1)),
    )

    f = wait_finished(tasks.fail.enqueue())
    if isinstance(f, Exception):
        show("failure", repr(f))
    else:
        err = f.errors[0] if f.errors else None
        importable = None
        if err:
            try:
                importable = err.exception_class.__name__
            except Exception as exc:
                importable = f"not importable: {type(exc).__name__}"
        show(
            "failure",
            [
                str(f.status),
                err and err.exception_class_path,
                importable,
                bool(err and "boom" in err.traceback),
            ],
        )

    s = wait_finished(tasks.exit_now.enqueue())
    show(
        "SystemExit",
        repr(s)
        if isinstance(s, Exception)
        else [str(s.status), [e.exception_class_path for e in s.errors]],
    )
    n = tasks.not_json.enqueue()
    nr = wait_finished(n)
    show(
        "non-JSON return: task_finished status / stored status",
        [finished_seen(n.id), repr(nr) if isinstance(nr, Exception) else str(nr.status)],
    )

    # A killed worker: SIGKILL its whole process group while the task runs.
    victim_q = f"victim_{KIND}"
    victim = worker("victim", victim_q, concurrency=1)
    h = tasks.hold.using(queue_name=victim_q).enqueue()
    time.sleep(3)
    running = get(h.id)
    os.killpg(victim.pid, signal.SIGKILL)
    time.sleep(10)
    after = get(h.id)
    show(
        "killed worker: before kill / 10 s after",
        [
            repr(running) if isinstance(running, Exception) else str(running.status),
            repr(after)
            if isinstance(after, Exception)
            else [str(after.status), [e.exception_class_path for e in after.errors]],
        ],
    )

    # Priority: 3 low then 3 high sent to a queue no worker reads yet.
    prio_q = f"prio_{KIND}"
    low = [tasks.whoami.using(queue_name=prio_q, priority=-100).enqueue("low") for _ in range(3)]
    high = [tasks.whoami.using(queue_name=prio_q, priority=100).enqueue("high") for _ in range(3)]
    worker("prio", prio_q, concurrency=1)
    for x in low + high:
        wait_finished(x)
    order = [line.split()[0] for line in Path(LOG).read_text().splitlines()]
    ids = {x.id: "low" for x in low} | {x.id: "high" for x in high}
    show("priority 100 vs -100 on Redis: run order", [ids[i] for i in order if i in ids])


try:
    main()
finally:
    for proc in WORKERS:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except Exception:
            pass
