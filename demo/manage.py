#!/usr/bin/env python
"""Django's command-line utility for the demo project, e.g. ``python demo/manage.py runserver``."""

import os
import sys
from pathlib import Path


def main() -> None:
    """Run a management command against the demo settings and database."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
