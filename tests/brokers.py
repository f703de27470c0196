"""The broker the real-worker tests run on: Redis (the default) or RabbitMQ.

``TT_BROKER=rabbitmq`` gives the run a RabbitMQ virtual host of its own (made with
``rabbitmqctl``, removed at the end of the session), so runs on one server never see
each other's messages; any other value is a broker URL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

REDIS_DEFAULT = "redis://127.0.0.1:6379/9"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/{vhost}"
#: Set once a vhost was made for this run; worker processes inherit the URL.
VHOST_ENV = "TT_RABBITMQ_VHOST"


def _rabbitmqctl(*args: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        raise RuntimeError("TT_BROKER=rabbitmq needs rabbitmqctl on PATH to make a vhost")
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def make_vhost(prefix: str) -> str:
    """A new RabbitMQ virtual host that guest may use; its name."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return vhost


def delete_vhost(vhost: str) -> None:
    _rabbitmqctl("delete_vhost", vhost)


def url() -> str:
    """The broker URL for this run (making the RabbitMQ vhost on first use)."""
    chosen = os.environ.get("TT_BROKER", REDIS_DEFAULT)
    if chosen != "rabbitmq":
        return chosen
    vhost = os.environ.get(VHOST_ENV)
    if not vhost:
        vhost = make_vhost("tasktrail-tests")
        os.environ[VHOST_ENV] = vhost
    return RABBITMQ.format(vhost=vhost)


def is_redis(broker_url: str) -> bool:
    return broker_url.startswith(("redis://", "rediss://"))


def spare_redis() -> str:
    """A Redis the run may also use (the Redis notifier, Celery's Redis result backend):
    the broker when it is Redis, else the default one."""
    chosen = url()
    return chosen if is_redis(chosen) else REDIS_DEFAULT


def remove_vhost() -> None:
    """Drop this run's vhost (with every queue in it), if the run made one."""
    vhost = os.environ.pop(VHOST_ENV, "")
    if vhost:
        delete_vhost(vhost)
