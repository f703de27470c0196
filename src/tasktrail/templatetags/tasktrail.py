"""``{% load tasktrail %}{% tasktrail_status task_id %}``: a live status for one task."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import reverse

from .. import access
from ..web.views import script_source

register = template.Library()


@register.inclusion_tag("tasktrail/widget.html")
def tasktrail_status(
    task_id: str, label: str = "", signed: bool = False, token: str | None = None
) -> dict[str, Any]:
    """State, progress bar, message and outcome of ``task_id``, kept live in the browser.

    The viewer's own rights apply (owner, staff, permission). ``signed=True`` embeds a
    fresh signed link instead, for pages that have already decided this visitor may
    see the task; ``token`` passes on one the page was opened with.
    """
    if signed:
        token = access.sign(task_id)
    query = f"?{urlencode({'token': token})}" if token else ""
    return {
        "task_id": task_id,
        "label": label,
        "status_url": reverse("tasktrail:status", args=[task_id]) + query,
        "events_url": reverse("tasktrail:events", args=[task_id]) + query,
        "script_url": f"{reverse('tasktrail:script')}?v={script_source()[1]}",
    }
