"""How times and a few values are written for people: in the admin, in action reports and in commands."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def format_time(moment: datetime | None, empty: str = "-") -> str:
    """``moment`` in the current time zone, to the second, with the zone: "2026-12-01 23:05:17 UTC"."""
    if moment is None:
        return empty
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    zone = moment.tzname() or ""
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone}".rstrip()
