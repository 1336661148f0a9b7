"""The demo's Celery app: configured from Django settings (CELERY_* names), tasks run eagerly in-process."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

app = Celery("badges_bridge_demo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.set_default()
app.autodiscover_tasks(["badges_bridge"], related_name="tasks")
