"""docs/grafana/tasktrail.json imports as a Grafana dashboard, and every query in it
names a metric the endpoint exports (read from a real scrape, not from a list)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import client_for, heartbeat_row, make_user, recorded

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "tasktrail.json"
METRIC = re.compile(r"\btasktrail_[a-z_]+\b")


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_it_has_the_shape_grafana_imports() -> None:
    dashboard = _dashboard()
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 30
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["type"] in {"timeseries", "stat", "table", "gauge", "bargauge"}
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        assert 0 < panel["gridPos"]["w"] <= 24
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["refId"] and target["expr"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "datasource" in variables


@pytest.mark.django_db(transaction=True)
def test_every_query_names_a_metric_tasktrail_exports() -> None:
    now = timezone.now()
    heartbeat_row("w@h", 1, now - timedelta(minutes=5), now, now + timedelta(minutes=1))
    started = now - timedelta(seconds=1)
    recorded("g-ok", "PENDING", name="app.add", queue="celery", sent_at=started)
    recorded("g-ok", "SUCCESS", name="app.add", started_at=started, finished_at=now)
    recorded("g-retry", "RETRY", name="app.add", error_type="IOError")
    recorded("g-run", "STARTED", name="app.add", worker="w@h")
    staff = make_user("grafana-staff", is_staff=True)
    text = client_for(staff).get("/tasktrail/metrics").content.decode()
    exported = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    # Families with no sample on this broker (consumers on Redis) still count as exported.
    exported |= {f"{f.name}" for f in text_string_to_metric_families(text) if f.type == "gauge"}
    named = {m for q in _queries(_dashboard()) for m in METRIC.findall(q)}
    assert named, "the dashboard queries no tasktrail metric"
    assert sorted(named - exported) == []
