"""The example site with room for one live stream per viewer (see test_stream_limits.py)."""

from exampleproject.settings import *  # noqa: F403

TASKTRAIL = {"STREAMS_PER_VIEWER": 1}
