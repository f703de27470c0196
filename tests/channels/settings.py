"""The test settings, served by uvicorn with Channels (tests/channels/asgi.py): the
stream limits come from the environment, so one server can be made to refuse."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import TASKTRAIL

ROOT_URLCONF = "tests.channels.urls"
TASKTRAIL = {
    **TASKTRAIL,
    "STREAMS_PER_VIEWER": int(os.environ.get("TT_STREAMS_PER_VIEWER", "32")),
    "STREAMS_PER_PROCESS": int(os.environ.get("TT_STREAMS_PER_PROCESS", "10000")),
    "POLL_INTERVAL": 0.05,
}
