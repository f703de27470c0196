"""What needs no server: the module without Channels, the widget's socket URL, the
close reasons' size."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.template import Context, Template

from tasktrail import channels
from tasktrail.web import limits
from tests.integration.conftest import ROOT, WORKER_PYTHONPATH


def test_without_channels_the_import_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['channels'] = None\n"
        "try:\n    import tasktrail.channels\n"
        "except ImportError as e:\n    print(e)\nelse:\n    print('imported')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": WORKER_PYTHONPATH, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 'pip install "django-tasktrail[channels]"' in out, out


def test_the_rest_of_tasktrail_never_imports_it() -> None:
    code = (
        "import sys, django; sys.modules['channels'] = None; django.setup()\n"
        "import tasktrail.urls, tasktrail.templatetags.tasktrail, tasktrail.web.sse\n"
        "print('tasktrail.channels' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": WORKER_PYTHONPATH, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("{% tasktrail_status 'a/b' websocket=True %}", "/tasktrail/tasks/a%252Fb/ws/"),
        (
            "{% tasktrail_status 't1' token='tok en' websocket=True %}",
            "/tasktrail/tasks/t1/ws/?token=tok+en",
        ),
        ("{% tasktrail_group 'g1' websocket=True %}", "/tasktrail/groups/g1/ws/"),
        ("{% tasktrail_group 'c1' kind='chain' websocket=True %}", "/tasktrail/chains/c1/ws/"),
    ],
)
def test_the_tags_give_the_widget_its_socket(tag: str, expected: str) -> None:
    html = Template("{% load tasktrail %}" + tag).render(Context())
    assert f'data-ws-url="{expected}"' in html


def test_without_websocket_the_widget_has_no_socket() -> None:
    html = Template("{% load tasktrail %}{% tasktrail_status 't1' %}").render(Context())
    assert "data-ws-url" not in html


def test_every_refusal_fits_a_close_frame() -> None:
    gate = limits.Gate()
    lease = gate.admit("v", 1, 1)
    refusals = [gate.admit("v", 1, 2), gate.admit("w", 5, 1)]
    assert isinstance(lease, limits.Lease)
    for refused in refusals:
        assert isinstance(refused, limits.Refusal)
        assert len(channels.reason(refused.reason, refused.retry_after).encode()) <= 123
    with pytest.raises(ValueError, match="close reason"):
        channels.reason("x" * 200)
