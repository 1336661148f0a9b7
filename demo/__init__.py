"""A small host project for trying badges_bridge without Open edX: see ``demo/run.py``.

The Celery app is loaded with the project, as Django projects usually do, so that
the plugin's tasks run in-process wherever the project is used (``run.py``,
``manage.py runserver``, the admin actions).
"""

from demo.celery_app import app as celery_app

__all__ = ["celery_app"]
