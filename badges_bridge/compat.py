"""Every touch point with edx-platform, imported lazily with fallbacks.

The plugin runs inside the LMS and Studio, but its tests and the demo run
without edx-platform; each function here degrades to a sensible default then.
"""

from __future__ import annotations

import logging

from django.conf import settings
from opaque_keys.edx.keys import CourseKey

log = logging.getLogger(__name__)


def course_display_name(course_key: CourseKey) -> str:
    """The course title from the platform's CourseOverview, or the course key."""
    try:
        from openedx.core.djangoapps.content.course_overviews.models import CourseOverview
    except ImportError:
        return str(course_key)
    try:
        return CourseOverview.get_from_id(course_key).display_name_with_default
    except Exception:  # noqa: BLE001 - any lookup failure falls back to the key
        log.info("badges_bridge: no course overview for %s", course_key)
        return str(course_key)


def course_about_url(course_key: CourseKey | str) -> str:
    """Public URL of the course in the LMS ('' when LMS_ROOT_URL is not set)."""
    root = getattr(settings, "LMS_ROOT_URL", "")
    return f"{root.rstrip('/')}/courses/{course_key}/about" if root else ""


def learner_full_name(user) -> str:
    """The learner's full name: the Open edX profile name, else the Django user's name."""
    profile = getattr(user, "profile", None)
    name = getattr(profile, "name", "") if profile is not None else ""
    return (name or user.get_full_name() or "").strip()
