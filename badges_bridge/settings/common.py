"""Settings applied in every environment (LMS and Studio)."""

from __future__ import annotations

#: Periodic tasks added to Celery beat's schedule: (task name, interval setting, default seconds).
PERIODIC_TASKS = [
    ("badges_bridge.tasks.redrive", "BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS", 300),
    ("badges_bridge.tasks.check_drift", "BADGES_BRIDGE_DRIFT_INTERVAL_SECONDS", 86400),
]


def plugin_settings(settings) -> None:
    """Fill in defaults only: values an operator already set always win.

    Every BADGES_BRIDGE_* setting has its default in badges_bridge.conf and is
    read at run time. Here we only add the periodic tasks to Celery beat's
    schedule (used where beat runs; otherwise run ``badges_bridge_redrive
    --check-drift`` from cron), on BADGES_BRIDGE_CELERY_QUEUE when it is set.
    """
    schedule = dict(getattr(settings, "CELERYBEAT_SCHEDULE", None) or {})
    queue = getattr(settings, "BADGES_BRIDGE_CELERY_QUEUE", None)
    for task, setting, default in PERIODIC_TASKS:
        interval = getattr(settings, setting, default)
        if interval and task not in schedule:
            schedule[task] = {"task": task, "schedule": float(interval)}
            if queue:
                schedule[task]["options"] = {"queue": queue}
    settings.CELERYBEAT_SCHEDULE = schedule
