"""ASGI entry point; ``manage.py demo`` serves it with uvicorn.

Static files (the admin's CSS and JavaScript) are served by Django's
``ASGIStaticFilesHandler``, the handler ``runserver`` uses, whatever ``DEBUG`` says:
this is a demo on 127.0.0.1. A deployed site serves them otherwise (see settings.py).

``LiveStreams`` lets tasktrail's live streams outlive their Django request, so a
stream holds no thread of its own (docs/how-to/live-status.md).
"""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

from tasktrail.asgi import LiveStreams

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")

application = LiveStreams(ASGIStaticFilesHandler(get_asgi_application()))
