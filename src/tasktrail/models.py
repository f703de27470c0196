"""Tables. Only ``tasktrail.store`` reads and writes them; the admin only reads."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from . import ids, states
from .jsoncodec import CeleryJSONDecoder, CeleryJSONEncoder

#: Named subsets of the task table. Each is the condition of a partial index and the
#: filter of the queries that index serves: one definition, so they cannot drift apart
#: (a query whose condition differs from the index's cannot use it).
#: Running now: started, progressing or in a custom state; not waiting for a retry.
RUNNING = models.Q(rank__gte=states.RANK_STARTED, rank__lt=states.RANK_RETRY)
#: Not done: waiting, running, retrying.
UNFINISHED = models.Q(rank__lt=states.RANK_LOST)
#: Done without a result: what an operator looks for.
UNSUCCESSFUL = models.Q(state__in=states.UNSUCCESSFUL)


def _json() -> models.JSONField[object]:
    return models.JSONField(null=True, encoder=CeleryJSONEncoder, decoder=CeleryJSONDecoder)


class Task(models.Model):
    """The current state of one task; one row per task id."""

    task_id = models.CharField(max_length=ids.MAX_LENGTH, primary_key=True)
    name = models.CharField(max_length=255, blank=True, default="")
    queue = models.CharField(max_length=255, blank=True, default="")
    state = models.CharField(max_length=50)
    # Denormalised from ``state`` so the SQL guard can compare without a CASE.
    rank = models.SmallIntegerField()
    attempt = models.PositiveIntegerField(default=1)
    max_retries = models.IntegerField(null=True)
    # Whether Celery ignores the task's result (``ignore_result``); NULL until a
    # sender or worker says. tasktrail still records it; Celery's view reads PENDING.
    ignore_result = models.BooleanField(null=True)
    args = _json()
    kwargs = _json()
    # Celery's view of the outcome: the return value, the encoded exception,
    # or the meta of a custom state.
    result = _json()
    children = _json()
    error_type = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    progress_current = models.FloatField(null=True)
    progress_total = models.FloatField(null=True)
    progress_message = models.TextField(blank=True, default="")
    meta = _json()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    parent_id = models.CharField(max_length=ids.MAX_LENGTH, blank=True, default="")
    root_id = models.CharField(max_length=ids.MAX_LENGTH, blank=True, default="")
    group_id = models.CharField(max_length=ids.MAX_LENGTH, blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    worker_pid = models.IntegerField(null=True)
    sent_at = models.DateTimeField(null=True)
    received_at = models.DateTimeField(null=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField()
    next_retry_at = models.DateTimeField(null=True)
    expires_at = models.DateTimeField(null=True)
    # The task's tasktrail_show_result option as recorded when it was sent or started
    # (tasktrail.options: "yes", "no", "default"; "" when no process knew the task).
    # A database default, so a process still running the previous release can insert.
    show_result = models.CharField(max_length=8, blank=True, db_default="")

    class Meta:
        db_table = "tasktrail_task"
        indexes = [
            # Partial indexes: a row outside the condition costs the write path nothing,
            # and most rows are (waiting tasks expire never, few tasks have a group
            # or an owner).
            models.Index(
                fields=["expires_at"],
                name="tasktrail_task_expiring",
                condition=models.Q(expires_at__isnull=False),
            ),
            models.Index(
                fields=["group_id"], name="tasktrail_task_grouped", condition=~models.Q(group_id="")
            ),
            models.Index(
                fields=["owner"],
                name="tasktrail_task_owned",
                condition=models.Q(owner__isnull=False),
            ),
            # Running tasks by worker, for the lost-worker check; partial, so it holds
            # only the few tasks running now and costs the write path little.
            models.Index(
                fields=["worker"],
                name="tasktrail_task_running",
                condition=RUNNING,
            ),
            # The dashboard's list (keyset on updated_at, task_id) and its bounded
            # aggregates (recent tasks by state, throughput, timings).
            models.Index(fields=["updated_at", "task_id"], name="tasktrail_task_updated"),
            # The same key over tasks not finished, and over those that ended without a
            # result: the stuck list and the task list filtered by such a state read
            # them in order. Partial, so finished tasks leave the first and successes
            # never enter the second.
            models.Index(
                fields=["updated_at", "task_id"],
                name="tasktrail_task_unfinished",
                condition=UNFINISHED,
            ),
            models.Index(
                fields=["updated_at", "task_id"],
                name="tasktrail_task_unsuccessful",
                condition=UNSUCCESSFUL,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'task'}[{self.task_id}] {self.state}"


class Transition(models.Model):
    """Append-only history: one row per accepted state change."""

    id = models.BigAutoField(primary_key=True)
    # No foreign key: history is written in the same flush as the task row and
    # removed with it by the store, and a constraint would only cost writes.
    task_id = models.CharField(max_length=ids.MAX_LENGTH)
    state = models.CharField(max_length=50)
    attempt = models.PositiveIntegerField()
    at = models.DateTimeField()
    worker = models.CharField(max_length=255, blank=True, default="")
    detail = _json()
    # Empty for a state change; the action's name for an operator's audit entry
    # ("retry", "revoke", ...). A database default, so the write path's INSERT, which
    # names its columns, needs no change.
    action = models.CharField(max_length=50, blank=True, db_default="")

    class Meta:
        db_table = "tasktrail_transition"
        # A plain index: db_index=True would add a LIKE index on PostgreSQL that no
        # query uses and every history row pays for.
        indexes = [models.Index(fields=["task_id"], name="tasktrail_transition_task")]

    def __str__(self) -> str:
        return f"{self.task_id} → {self.state} (attempt {self.attempt})"


class GroupResult(models.Model):
    """A saved ``GroupResult`` (``group.apply_async().save()``), for Celery's restore."""

    group_id = models.CharField(max_length=ids.MAX_LENGTH, primary_key=True)
    result = _json()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, db_index=True)

    class Meta:
        db_table = "tasktrail_group"

    def __str__(self) -> str:
        return self.group_id


class Chord(models.Model):
    """A chord's join: how many of its header tasks have returned, of how many.

    Celery's ``on_chord_part_return`` adds one to ``done`` per header task that
    finishes, once per task (:class:`ChordMember`; one ``UPDATE ... RETURNING``,
    atomic on SQLite and PostgreSQL); the task whose addition makes it ``size + added``
    sends the callback, unless a header task failed first (``failed_at``). The row
    stays after that (a header task run again adds nothing and sends nothing) until it
    expires with the chord's group.
    """

    group_id = models.CharField(max_length=ids.MAX_LENGTH, primary_key=True)
    #: The chord's callback (its body), as frozen when the chord was applied.
    callback_id = models.CharField(max_length=ids.MAX_LENGTH, blank=True, db_default="")
    #: Header tasks, as Celery counts them (``set_chord_size``); NULL until it says.
    size = models.IntegerField(null=True)
    #: Tasks added to the header while it ran (``Task.add_to_chord``).
    added = models.IntegerField(db_default=0)
    done = models.IntegerField(db_default=0)
    #: When a header task failed and so failed the chord (its callback, and the chain
    #: after it); set once, by the first failure.
    failed_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, db_index=True)

    class Meta:
        db_table = "tasktrail_chord"

    def __str__(self) -> str:
        return f"chord {self.group_id}: {self.done}/{self.size}"


class ChordMember(models.Model):
    """A header task its chord's join has counted: the insert of this row decides
    whether a returning header task adds one to :attr:`Chord.done`, so a task
    delivered again (``acks_late`` after a lost worker, a replayed message) counts
    once. Deleted with its chord (expiry), and when the chord is applied again."""

    pk = models.CompositePrimaryKey("group_id", "task_id")
    group_id = models.CharField(max_length=ids.MAX_LENGTH)
    task_id = models.CharField(max_length=ids.MAX_LENGTH)

    class Meta:
        db_table = "tasktrail_chord_member"

    def __str__(self) -> str:
        return f"chord {self.group_id}: {self.task_id}"


class ChainStep(models.Model):
    """One step of a chain, learned when its first task is published.

    Celery sends a chain's later steps only when the earlier ones finish; until then
    they travel in the message's ``chain`` option, which is read once, at the first
    step's publish, so every step (and so the chain) can be found by its id at once.
    """

    task_id = models.CharField(max_length=ids.MAX_LENGTH, primary_key=True)
    #: The chain's first task (its ``root_id``): one id for the whole chain.
    chain_id = models.CharField(max_length=ids.MAX_LENGTH, db_index=True)
    position = models.IntegerField()
    #: The task's name, or ``group``/``chord`` for a step that is one.
    name = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, db_index=True)

    class Meta:
        db_table = "tasktrail_chain_step"

    def __str__(self) -> str:
        return f"{self.chain_id} step {self.position}: {self.task_id}"


class TaskName(models.Model):
    """A (task name, queue) pair some task was recorded with: a few dozen rows however
    many tasks, so searching names by part and listing them for filters never reads the
    task table. Written by the store's flush, once per pair and process
    (:mod:`tasktrail.store.names`); a pair outlives its tasks (cleanup leaves it)."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=255)
    queue = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        db_table = "tasktrail_name"
        constraints = [
            models.UniqueConstraint(fields=["name", "queue"], name="tasktrail_name_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.queue or 'no queue'})"


class Worker(models.Model):
    """A worker's heartbeat: one row per worker hostname, refreshed while it runs."""

    hostname = models.CharField(max_length=255, primary_key=True)
    # The worker's main process; its pool processes are on the task rows.
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()
    # Both stamped by the database's clock when the heartbeat's UPDATE runs (never the
    # worker's), silent_after from the worker's own LOST_AFTER and HEARTBEAT_INTERVAL, so
    # workers with different settings are judged by their own (rule: docs/failures.md).
    silent_after = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True)
    # Tasks in hand at the last heartbeat: running, and received but waiting.
    active = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    # The pool's size (``--concurrency``) as the worker started with it; NULL from a
    # worker of an earlier release. Heartbeats carry it so the workers page reads the
    # table (about 1 ms) instead of broadcasting ``inspect().stats()`` (a second).
    pool = models.IntegerField(null=True)

    class Meta:
        db_table = "tasktrail_worker"

    def __str__(self) -> str:
        return f"{self.hostname} (pid {self.pid})"


class Metric(models.Model):
    """Monotonic counters for the metrics endpoint, added to by every flush.

    One row per ``(name, kind, label)``: tasks by name and final state, retries, and
    the buckets of the wait and run time histograms (:mod:`tasktrail.store.rollup`).
    A few dozen rows per task name whatever the task table holds, and never deleted
    by expiry, so a scrape reads a small table and the counters never go back.
    """

    pk = models.CompositePrimaryKey("name", "kind", "label")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16)
    label = models.CharField(max_length=50)
    count = models.BigIntegerField()
    #: Sum of the observed seconds (histograms); 0 for plain counters.
    total = models.FloatField()

    class Meta:
        db_table = "tasktrail_metric"

    def __str__(self) -> str:
        return f"{self.name} {self.kind} {self.label}: {self.count}"


class Lease(models.Model):
    """Who does a fleet-wide chore (the lost-worker check, the cleanup) until when."""

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "tasktrail_lease"

    def __str__(self) -> str:
        return f"{self.name}: {self.holder}"


class Revocation(models.Model):
    """A revoke sent through tasktrail, kept so workers that were offline honour it too."""

    task_id = models.CharField(max_length=ids.MAX_LENGTH, primary_key=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "tasktrail_revocation"

    def __str__(self) -> str:
        return self.task_id
