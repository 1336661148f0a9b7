"""The Celery app of the test project, configured from Django settings (CELERY_* names).

The test process makes it the default app so that the plugin's shared tasks use
it; the integration tests start a worker process with ``celery -A tests.celery_app worker``.
"""

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()  # ``celery -A tests.celery_app`` imports this module before anything else sets Django up

app = Celery("badges_bridge_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.set_default()
app.autodiscover_tasks(["badges_bridge"], related_name="tasks", force=True)
