"""ASGI entry point; ``manage.py demo`` serves it with uvicorn.

Static files (the admin's CSS and JavaScript) are served by Django's
``ASGIStaticFilesHandler``, the handler ``runserver`` uses, whatever ``DEBUG`` says:
this is a demo on 127.0.0.1. A deployed site serves them otherwise (see settings.py).
"""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")

application = ASGIStaticFilesHandler(get_asgi_application())
