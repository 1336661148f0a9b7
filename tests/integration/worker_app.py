"""The Celery app as loaded by the worker process that the integration tests start.

``celery -A`` imports the app module before anything has set Django up, and the
test app imports the plugin's tasks (and so its models) as soon as it is built.
This module sets Django up first, then hands the same app to Celery.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from tests.celery_app import app  # noqa: E402 - Django must be set up before the tasks are imported

__all__ = ["app"]
