"""The course catalogue and course teams used outside edx-platform (a standalone site, the demo).

Inside Open edX the platform's courses and Studio roles decide, and these tables stay empty.
"""

from __future__ import annotations

from django.contrib import admin

from badges_bridge.models import StandaloneCourse, StandaloneCourseRole


@admin.register(StandaloneCourse)
class StandaloneCourseAdmin(admin.ModelAdmin):
    """Courses known to the plugin outside edx-platform (the Studio page answers 404 for any other)."""

    list_display = ["course_key", "display_name"]
    search_fields = ["course_key", "display_name"]


@admin.register(StandaloneCourseRole)
class StandaloneCourseRoleAdmin(admin.ModelAdmin):
    """Who may set up a course's badges on the Studio page outside edx-platform (with global staff)."""

    list_display = ["user", "course_key", "role"]
    list_filter = ["role"]
    search_fields = ["course_key"]
    raw_id_fields = ["user"]
