"""Who may see a task, and what of it: the one rule every surface applies.

A task is visible to the user who sent it, to staff and holders of
``TASKTRAIL["VIEW_PERMISSION"]``, and to whoever holds a signed, unexpired link to it
(:func:`sign`, for anonymous flows). To everyone else it does not exist: lookups raise
:class:`~tasktrail.TaskNotFound`, exactly as for an unknown id, so ids cannot be probed.

What a viewer sees of a task is :func:`disclosure` of the viewer's :class:`Level` and
the record, from the table :data:`RULES` (docs/how-to/security.md shows the same table;
a test reads both). Every surface (JSON status, event stream, status page, dashboard,
admin, CLI) asks it and renders :func:`redact` of the record and
:func:`redact_history` of its transitions, so none can show more than it allows.

A task's outcome (result, error messages) is shown to non-staff unless it hides it:
:func:`shows_outcome` reads the ``tasktrail_show_result`` option *recorded with the
task* when it was sent or started (see :mod:`tasktrail.options`), never the web
process's task registry, which need not have imported the task. A record no process
that knew the task has described (sent by name, never started) fails closed: staff only.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import time
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from django.core import signing
from django.utils import timezone

from . import conf, notify, options, states, store
from .exceptions import TaskNotFound
from .records import TaskError, TaskRecord, Transition

_SALT = "tasktrail.link"
#: Acting on tasks (retry, revoke) on the dashboard and in the admin needs this.
ACTION_PERMISSION = "tasktrail.change_task"


class Level(enum.IntEnum):
    NONE = 0
    VIEWER = 1
    STAFF = 2


def sign(task_id: str, expires: timedelta | None = None) -> str:
    """A token granting a view of ``task_id`` until ``expires`` from now.

    It names the task by its id *and* by when it was first recorded, so that once the
    task is forgotten (``AsyncResult.forget()``) a later task reusing the id does not
    open with it. A task not recorded yet (the link made before its task is sent, or
    while its record waits in another process's buffer) is named by the time of
    signing instead: the link opens a task under that id first recorded no later
    than :data:`SIGNING_SKEW` after it.
    """
    lifetime = expires if expires is not None else conf.get().LINK_EXPIRES
    now = time.time()
    known = store.identity(task_id)
    if known is not None and known.sent:
        seen, exact = _micros(known.first_seen), True
    else:
        seen, exact = _micros(timezone.now()), False
    deadline = int(now + lifetime.total_seconds())
    return signing.dumps([task_id, deadline, seen, exact], salt=_SALT)


#: How much later than its link's signing a task may be first recorded and still open
#: with it: the hosts' clocks (NTP keeps them milliseconds apart) and a view that
#: makes the link just before it sends the task. Only links made for a task not yet
#: recorded use it; the others name the task's own sent time.
SIGNING_SKEW = timedelta(seconds=5)


def _micros(moment: datetime) -> int:
    """``moment`` in whole microseconds since 1970, exactly (no float rounding)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC if moment.tzinfo else None)
    return (moment - epoch) // timedelta(microseconds=1)


@dataclasses.dataclass(frozen=True, slots=True)
class _Link:
    """A verified, unexpired token: the task it names."""

    task_id: str
    seen: int
    exact: bool

    def names(self, task_id: str, known: store.Identity) -> bool:
        if task_id != self.task_id:
            return False
        first = _micros(known.first_seen)
        if self.exact:
            return first == self.seen
        return first <= self.seen + int(SIGNING_SKEW.total_seconds() * 1_000_000)


def _link(token: str | None) -> _Link | None:
    """The link ``token`` carries, checked whatever task is asked for (the same work
    for every id); ``None`` for no token, a bad or expired one."""
    if not token:
        return None
    try:
        value = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        return None
    match value:
        # Links made before tokens named the task's identity carry two items; they
        # fail closed (they could open a later task reusing the id).
        case [str() as granted, int() as deadline, int() as seen, bool() as exact]:
            return _Link(granted, seen, exact) if time.time() < deadline else None
    return None


def _is_staff(user: Any) -> bool:
    return bool(user.is_active and (user.is_staff or user.is_superuser))


def _sees_all(user: Any) -> bool:
    permission = conf.get().VIEW_PERMISSION
    return bool(user is not None and permission and user.has_perm(permission))


def operator(user: Any) -> Level:
    """What ``user`` may see of *every* task, as on the dashboard: staff see it all,
    holders of ``VIEW_PERMISSION`` what owners see; anyone else, nothing."""
    if user is None or not user.is_authenticated:
        return Level.NONE
    if _is_staff(user):
        return Level.STAFF
    return Level.VIEWER if _sees_all(user) else Level.NONE


def may_act(user: Any) -> bool:
    """Whether ``user`` may retry and revoke any task they can see."""
    return bool(
        operator(user) is not Level.NONE and user.is_active and user.has_perm(ACTION_PERMISSION)
    )


class Scrape(enum.Enum):
    """Whether a request may read the metrics endpoint, and how it is told if not."""

    ALLOWED = "allowed"
    #: No credentials, or a wrong token: 401, with ``WWW-Authenticate: Bearer``.
    UNAUTHENTICATED = "unauthenticated"
    #: Logged in, but neither staff nor holding ``METRICS_PERMISSION``: 403.
    FORBIDDEN = "forbidden"


_BEARER = "bearer "


def may_scrape(user: Any, authorization: str) -> Scrape:
    """The metrics endpoint's rule: staff, holders of ``METRICS_PERMISSION``, or a
    request presenting ``Authorization: Bearer <METRICS_TOKEN>``. With neither setting,
    staff only: the endpoint is never open by default. The token is compared in
    constant time; a request presenting a token is judged by it alone."""
    settings = conf.get()
    if authorization[: len(_BEARER)].lower() == _BEARER:
        presented = authorization[len(_BEARER) :].strip().encode()
        expected = (settings.METRICS_TOKEN or "").encode()
        good = bool(expected) and hmac.compare_digest(presented, expected)
        return Scrape.ALLOWED if good else Scrape.UNAUTHENTICATED
    if user is None or not user.is_authenticated:
        return Scrape.UNAUTHENTICATED
    if _is_staff(user):
        return Scrape.ALLOWED
    permission = settings.METRICS_PERMISSION
    if permission and user.is_active and user.has_perm(permission):
        return Scrape.ALLOWED
    return Scrape.FORBIDDEN


@dataclasses.dataclass(frozen=True, slots=True)
class _Viewer:
    """What the access rule needs of the user, read before any task is."""

    pk: str | None
    staff: bool
    sees_all: bool

    @classmethod
    def of(cls, user: Any) -> _Viewer:
        # Touches the session, the user and (unless staff) their permissions whatever
        # the id: a hidden task and an unknown id then cost the same queries and get
        # the same headers (the session middleware's ``Vary: Cookie``).
        if user is not None and user.is_authenticated:
            if _is_staff(user):
                return cls(str(user.pk), True, True)
            return cls(str(user.pk), False, _sees_all(user))
        return cls(None, False, _sees_all(user))

    def level(self, task_id: str, known: store.Identity, link: _Link | None) -> Level:
        if self.staff:
            return Level.STAFF
        if self.owns(known.owner_id) or (link is not None and link.names(task_id, known)):
            return Level.VIEWER
        return Level.NONE

    def owns(self, owner_id: Any) -> bool:
        """Whether a task of ``owner_id`` is open to this viewer without a link."""
        return self.sees_all or (owner_id is not None and str(owner_id) == self.pk)

    def by_owner(self, owner_id: Any) -> Level:
        if self.staff:
            return Level.STAFF
        return Level.VIEWER if self.owns(owner_id) else Level.NONE


def viewer(user: Any) -> _Viewer:
    """What the rule needs of ``user``, read once, before any task is (see
    :func:`canvas_level`)."""
    return _Viewer.of(user)


def canvas_level(seen_by: _Viewer, owners: Collection[Any]) -> Level:
    """What a viewer may see of a group, chord or chain: what they may see of the task
    in it they may see least of, by the rule for a task without a link (staff see all;
    holders of ``VIEW_PERMISSION`` see all as owners do; an owner sees a canvas every
    task of which is theirs). ``owners`` are the owners of its recorded tasks; none
    recorded is ``NONE``, so an unknown canvas and a hidden one look the same.
    Signed links name one task, never a canvas: none opens one.
    """
    return min((seen_by.by_owner(o) for o in owners), default=Level.NONE)


def lookup(task_id: str, user: Any, token: str | None = None) -> tuple[TaskRecord, Level]:
    """The record and what ``user`` may see; :class:`TaskNotFound` if unknown *or* hidden.

    The viewer and the token are resolved first, then one narrow read decides: a
    hidden task and an unknown id do the same work. Only a visible task's full record
    is read.
    """
    viewer = _Viewer.of(user)
    link = _link(token)
    known = store.identity(task_id)
    allowed = Level.NONE if known is None else viewer.level(task_id, known, link)
    if allowed is Level.NONE:
        raise TaskNotFound(task_id)
    return store.get(task_id), allowed


class Shown(enum.Enum):
    """A cell of :data:`RULES`, as docs/how-to/security.md writes it."""

    ALWAYS = "yes"
    UNLESS_HIDDEN = "unless hidden"
    NEVER = "no"


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    #: State, phase, progress, timestamps, attempts, queue, related tasks, actions taken.
    task: Shown
    #: The result and the error type and message: the final one and every attempt's.
    outcome: Shown
    #: Tracebacks, arguments, the worker (hostname, pid; the workers table) and the owner.
    internals: Shown


#: What each level sees: the table of docs/how-to/security.md.
RULES: Final = {
    Level.STAFF: Rule(Shown.ALWAYS, Shown.ALWAYS, Shown.ALWAYS),
    Level.VIEWER: Rule(Shown.ALWAYS, Shown.UNLESS_HIDDEN, Shown.NEVER),
    Level.NONE: Rule(Shown.NEVER, Shown.NEVER, Shown.NEVER),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Disclosure:
    """What one viewer may see of one task (or, without a record, of any task)."""

    task: bool
    outcome: bool
    traceback: bool
    arguments: bool
    worker: bool
    owner: bool

    @property
    def everything(self) -> bool:
        return all(getattr(self, f.name) for f in dataclasses.fields(self))


class Described(Protocol):
    """A task as :func:`disclosure` needs it: a record, or the admin's row."""

    @property
    def show_result(self) -> str: ...


def shows_outcome(record: Described) -> bool:
    """Whether viewers other than staff may see ``record``'s outcome.

    Only what was recorded with the task counts: ``"default"`` defers to
    ``SHOW_RESULT`` as it is now (so turning it off hides every such task at once);
    unknown (``""``) is hidden, whatever ``SHOW_RESULT`` says.
    """
    match record.show_result:
        case options.SHOWN:
            return True
        case options.DEFAULT:
            return conf.get().SHOW_RESULT
    return False


def _grants(cell: Shown, record: Described | None) -> bool:
    if cell is Shown.UNLESS_HIDDEN:
        return record is not None and shows_outcome(record)
    return cell is Shown.ALWAYS


def disclosure(allowed: Level, record: Described | None = None) -> Disclosure:
    """What a viewer at ``allowed`` sees of ``record``; without one, what they see of
    every task (an outcome only where :data:`RULES` shows it always)."""
    rule = RULES[allowed]
    internals = _grants(rule.internals, record)
    return Disclosure(
        task=_grants(rule.task, record),
        outcome=_grants(rule.outcome, record),
        traceback=internals,
        arguments=internals,
        worker=internals,
        owner=internals,
    )


def redact(record: TaskRecord, shown: Disclosure) -> TaskRecord:
    """``record`` with what ``shown`` does not allow taken out."""
    error = record.error
    if error is not None and not shown.traceback:
        error = TaskError(error.type, error.message, None)
    return dataclasses.replace(
        record,
        result=record.result if shown.outcome else None,
        error=error if shown.outcome else None,
        args=record.args if shown.arguments else None,
        kwargs=record.kwargs if shown.arguments else None,
        worker=record.worker if shown.worker else "",
        worker_pid=record.worker_pid if shown.worker else None,
        owner_id=record.owner_id if shown.owner else None,
    )


#: Which part of a disclosure each key of a transition's detail belongs to; a key not
#: listed is shown only to whoever sees everything.
_DETAIL: Final = {
    "next_retry_at": "task",
    "pid": "worker",
    "error_type": "outcome",
    "error_message": "outcome",
    "traceback": "traceback",
}


def redact_history(history: Iterable[Transition], shown: Disclosure) -> list[Transition]:
    """A task's transitions (and so its attempts and timeline) as ``shown`` allows."""
    if shown.everything:
        return list(history)

    def allowed(key: str) -> bool:
        part = _DETAIL.get(key)
        return part is not None and bool(getattr(shown, part))

    return [
        dataclasses.replace(
            t,
            worker=t.worker if shown.worker else "",
            detail={k: v for k, v in t.detail.items() if allowed(k)},
        )
        for t in history
    ]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def snapshot(record: TaskRecord, allowed: Level) -> dict[str, Any]:
    """The task as ``allowed`` may see it, ready for JSON."""
    shown = disclosure(allowed, record)
    visible = redact(record, shown)
    data: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "state": record.state,
        "phase": str(record.phase),
        "ready": record.ready,
        "attempt": record.attempt,
        "retries_left": record.retries_left,
        "progress": record.progress and record.progress.as_json(),
        "sent_at": _iso(record.sent_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "updated_at": _iso(record.updated_at),
        "next_retry_at": _iso(record.next_retry_at),
        "version": notify.version(record),
    }
    if shown.outcome and record.state == states.SUCCESS:
        data["result"] = visible.result
    if visible.error is not None:
        data["error"] = {"type": visible.error.type, "message": visible.error.message}
        if shown.traceback:
            data["error"]["traceback"] = visible.error.traceback
    if shown.arguments:
        data.update(args=visible.args, kwargs=visible.kwargs)
    if shown.worker:
        data["worker"] = visible.worker
    return data
