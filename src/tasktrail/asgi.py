"""tasktrail's ASGI entry point: Django's, with live streams that hold no thread.

In the project's ``asgi.py``::

    from tasktrail.asgi import get_asgi_application

    application = get_asgi_application()

or, around an application the project already wraps (static files, Channels'
``ProtocolTypeRouter`` for ``"http"``)::

    from tasktrail.asgi import LiveStreams

    application = LiveStreams(ASGIStaticFilesHandler(get_asgi_application()))

Every request still goes through Django and all its middleware; a live stream's body
is then sent by :class:`LiveStreams` once Django's request has ended, so the thread
Django gives each request for its sync middleware ends with it (see
:mod:`tasktrail.web.handoff`). Without it, streams work too, one thread each.
"""

from __future__ import annotations

from django.core.asgi import get_asgi_application as django_asgi_application

from .web.handoff import ASGIApp, LiveStreams

__all__ = ["LiveStreams", "get_asgi_application"]


def get_asgi_application() -> ASGIApp:
    """Django's ASGI application (it sets Django up) behind :class:`LiveStreams`."""
    return LiveStreams(django_asgi_application())
