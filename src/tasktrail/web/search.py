"""The search every list of the dashboard shares: its form, from the query string.

The task list, the overview's lists and their live streams read the same fields the
same way, so a stream shows exactly what its page lists. Values are parsed by the
rules the CLI applies too (:mod:`tasktrail.inputs`); a bad one is the field's error
(the page says why, status 400), never a query. Fields an operator may not use are
not on the form at all: the worker, owner and arguments (what
:func:`tasktrail.access.disclosure` hides from them), and the error text when they
may not see outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.http import QueryDict

from .. import access, ids, inputs, states
from ..store import queries

#: A moment typed as an ISO date or an age; the hint each time field shows.
WHEN_HINT = "2026-11-25, 2026-11-25T14:30 or an age: 30s, 90m, 12h, 2d"
#: Longest text searched for (a name, an error's words): longer is a typo or a paste.
MAX_TEXT = 200


def _bounded(parse: Callable[[Any], Any], value: Any) -> Any:
    """``parse(value)``, its refusal as the field's error."""
    try:
        return parse(value)
    except inputs.Refused as refused:
        raise forms.ValidationError(str(refused)) from None


def _text(label: str, placeholder: str, max_length: int = MAX_TEXT) -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=max_length,
        label=label,
        widget=forms.TextInput(attrs={"placeholder": placeholder, "autocomplete": "off"}),
    )


def _part(text: str) -> str | None:
    """A search part as typed (Django's fields already refuse NUL), ``None`` when blank."""
    return text.strip() or None


class _StateField(forms.ChoiceField):
    """A state from the list; typed in a URL, its case does not matter (``failure``)."""

    def to_python(self, value: Any) -> str:
        return str(super().to_python(value)).strip().upper()


class SearchForm(forms.Form):
    """Filters of a list of tasks; bad values are reported, not used."""

    id = _text("Task id", "exact id", ids.MAX_LENGTH)
    name = _text("Name", "part: slow_task, reports.")
    state = _StateField(
        required=False,
        choices=[("", "any state"), *((s, s) for s in states.LISTED_STATES)],
        error_messages={"invalid_choice": "invalid task state %(value)s: choose one of the list"},
    )
    queue = _text("Queue", "part of a queue", 255)
    worker = _text("Worker", "part of a hostname", 255)
    owner = _text("Owner", "username or id", 150)
    since = _text("Updated since", "90m, 2026-11-25")
    until = _text("Updated before", "2026-11-25T14:30")
    error = _text("Error text", "part of the error")
    arguments = _text("Arguments", "part of args or kwargs")
    after = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, data: QueryDict, level: access.Level) -> None:
        super().__init__(data)
        self.fields["since"].help_text = self.fields["until"].help_text = WHEN_HINT
        sees = access.disclosure(level)
        hidden = {
            "worker": not sees.worker,
            # Listing someone's tasks would tell who owns them.
            "owner": not sees.owner,
            "arguments": not sees.arguments,
            "error": not sees.outcome,
        }
        for name, hide in hidden.items():
            if hide:
                del self.fields[name]

    def clean_name(self) -> str | None:
        return _part(self.cleaned_data["name"])

    def clean_queue(self) -> str | None:
        return _part(self.cleaned_data["queue"])

    def clean_worker(self) -> str | None:
        return _part(self.cleaned_data["worker"])

    def clean_error(self) -> str | None:
        return _part(self.cleaned_data["error"])

    def clean_arguments(self) -> str | None:
        return _part(self.cleaned_data["arguments"])

    def clean_state(self) -> str | None:
        return self.cleaned_data["state"] or None

    def clean_owner(self) -> Any:
        text = self.cleaned_data["owner"].strip()
        return _bounded(inputs.user, text) if text else None

    def clean_since(self) -> datetime | None:
        text = self.cleaned_data["since"].strip()
        return _bounded(inputs.when, text) if text else None

    def clean_until(self) -> datetime | None:
        text = self.cleaned_data["until"].strip()
        return _bounded(inputs.when, text) if text else None

    def clean_after(self) -> queries.Cursor | None:
        text = self.cleaned_data["after"]
        try:
            return queries.parse_cursor(text) if text else None
        except ValueError:
            raise forms.ValidationError("bad page cursor: start from the first page") from None

    def task_filter(self) -> queries.TaskFilter:
        data = self.cleaned_data
        return queries.TaskFilter(
            state=data.get("state"),
            name=data.get("name"),
            queue=data.get("queue"),
            worker=data.get("worker"),
            owner_id=data.get("owner"),
            since=data.get("since"),
            until=data.get("until"),
            error=data.get("error"),
            arguments=data.get("arguments"),
        )

    def filtering(self) -> bool:
        """Whether any filter is set (the overview shows its search open then)."""
        keys = set(self.fields) - {"id", "after"}
        return self.is_valid() and any(self.cleaned_data.get(k) for k in keys)
