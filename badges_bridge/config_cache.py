"""The per-course badge configuration, cached so that events cost no query.

A course without badges is cached as an empty tuple, so the receivers answer
from the cache alone. Any change to a course badge, its template or its account
deletes the affected course entries.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from opaque_keys.edx.keys import CourseKey

from badges_bridge.conf import get_setting
from badges_bridge.data import BadgeRule

_KEY_PREFIX = "badges_bridge.course_rules.v1."


def _cache_key(course_key: CourseKey | str) -> str:
    return _KEY_PREFIX + hashlib.sha256(str(course_key).encode()).hexdigest()


def _load(course_key: CourseKey) -> tuple[BadgeRule, ...]:
    from badges_bridge.models import CourseBadge

    badges = CourseBadge.objects.filter(
        course_key=course_key, enabled=True, template__state="active", template__account__enabled=True
    ).only("id", "criterion", "grade_threshold", "certificate_modes", "revoke_policy", "version")
    return tuple(
        BadgeRule(
            course_badge_id=badge.id,
            criterion=badge.criterion,
            grade_threshold=badge.grade_threshold,
            certificate_modes=badge.modes(),
            revoke_policy=badge.revoke_policy,
            version=badge.version,
        )
        for badge in badges
    )


def rules_for_course(course_key: CourseKey) -> tuple[BadgeRule, ...]:
    """The enabled badge rules of a course, from the cache when possible."""
    key = _cache_key(course_key)
    rules = cache.get(key)
    if rules is None:
        rules = _load(course_key)
        cache.set(key, rules, get_setting("CONFIG_CACHE_SECONDS"))
    return rules


def invalidate(*course_keys: CourseKey | str) -> None:
    """Forget the cached rules of these courses."""
    if course_keys:
        cache.delete_many([_cache_key(key) for key in course_keys])


def invalidate_for_course_badge(sender, instance, **kwargs) -> None:
    """post_save/post_delete receiver for CourseBadge."""
    invalidate(instance.course_key)


def invalidate_for_template(sender, instance, **kwargs) -> None:
    """post_save/post_delete receiver for BadgeTemplate."""
    invalidate(*instance.course_badges.values_list("course_key", flat=True))


def invalidate_for_account(sender, instance, **kwargs) -> None:
    """post_save/post_delete receiver for ProviderAccount."""
    from badges_bridge.models import CourseBadge

    invalidate(*CourseBadge.objects.filter(template__account=instance).values_list("course_key", flat=True))
