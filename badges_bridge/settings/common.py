"""Settings applied in every environment (LMS and Studio)."""

from __future__ import annotations

REDRIVE_TASK = "badges_bridge.tasks.redrive"
DRIFT_TASK = "badges_bridge.tasks.check_drift"


def plugin_settings(settings) -> None:
    """Fill in defaults only: values an operator already set always win.

    Every BADGES_BRIDGE_* setting has its default in badges_bridge.conf and is
    read at run time. Here we only add the periodic redrive to Celery beat's
    schedule (used where beat runs; otherwise run ``badges_bridge_redrive`` from cron).
    """
    schedule = dict(getattr(settings, "CELERYBEAT_SCHEDULE", None) or {})
    interval = getattr(settings, "BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS", 300)
    if interval and REDRIVE_TASK not in schedule:
        schedule[REDRIVE_TASK] = {"task": REDRIVE_TASK, "schedule": float(interval)}
        settings.CELERYBEAT_SCHEDULE = schedule
    drift_interval = getattr(settings, "BADGES_BRIDGE_DRIFT_INTERVAL_SECONDS", 86400)
    if interval and drift_interval and DRIFT_TASK not in schedule:
        schedule[DRIFT_TASK] = {"task": DRIFT_TASK, "schedule": float(drift_interval)}
        settings.CELERYBEAT_SCHEDULE = schedule
