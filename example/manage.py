#!/usr/bin/env python
"""Management commands of tasktrail's example project, e.g. ``python example/manage.py demo``.

Python puts this file's folder first on ``sys.path``, so ``exampleproject`` and
``demo`` import from any working directory.
"""

import os
import sys


def main() -> None:
    # Forced rather than setdefault: a shell that exported tests.settings for
    # tasktrail's own test suite must still run the example.
    os.environ["DJANGO_SETTINGS_MODULE"] = "exampleproject.settings"
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
