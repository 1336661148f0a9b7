"""What the operator's admin shows: times, states, actors, links and list filters.

Kept apart from :mod:`badges_bridge.admin` so that the model admins only say
which columns and actions they have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api
from badges_bridge.display import format_time
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import CourseBadge, IssuanceState, Operation
from badges_bridge.providers import get_provider_class, provider_paths

#: Characters of an error shown in a list column; the whole text is in the tooltip and on the row's page.
SHORT_ERROR_LENGTH = 80
#: An example course key, for messages.
COURSE_KEY_EXAMPLE = "course-v1:DemoX+Stats+2026"
#: The CSS class of each state, by the health bucket it belongs to.
_STATE_CLASS = {
    IssuanceState.ISSUED: "ok",
    IssuanceState.PENDING: "busy",
    IssuanceState.ISSUING: "busy",
    IssuanceState.REVOKE_PENDING: "busy",
    IssuanceState.FAILED: "warn",
    IssuanceState.DEAD: "bad",
    IssuanceState.REVOKED: "off",
    IssuanceState.REJECTED: "off",
    IssuanceState.NOT_MET: "off",
    IssuanceState.AWAITING_APPROVAL: "busy",
    IssuanceState.DECLINED: "off",
}


def time_html(moment, *, stacked: bool = False) -> str:
    """A time to the second with its zone, never wrapped; ``stacked`` puts the date above the time (narrow columns)."""
    text = format_time(moment)
    if stacked and moment is not None:
        day, _space, clock = text.partition(" ")
        return format_html('<span class="bb-time">{}</span><br><span class="bb-time">{}</span>', day, clock)
    return format_html('<span class="bb-time">{}</span>', text)


def time_column(field_name: str, description: str, *, stacked: bool = False) -> Callable:
    """A model admin method (a column or read-only field) showing a datetime field with seconds and time zone."""

    @admin.display(description=description, ordering=field_name)
    def show(model_admin, obj) -> str:
        return time_html(getattr(obj, field_name), stacked=stacked)

    show.__name__ = f"{field_name}_shown"
    return show


def state_badge(state: str, operation: str = Operation.ISSUE) -> str:
    """A coloured state label that tells a failing or dead issue from a failing or dead revoke."""
    return format_html(
        '<span class="bb-state bb-{}">{}</span>', _STATE_CLASS.get(state, "off"), api.state_label(state, operation)
    )


def breakable_key(key) -> str:
    """A course key or event type that may wrap after each "+", ":", "." and "_" in a narrow column."""
    parts = re.split(r"(?<=[+:._])", str(key))
    return format_html_join(mark_safe("<wbr>"), "{}", ((part,) for part in parts))  # noqa: S308 - a constant


def short_text(text: str, length: int = SHORT_ERROR_LENGTH) -> str:
    """``text`` cut to ``length`` characters, the whole of it in the tooltip."""
    if not text:
        return "-"
    return format_html('<span title="{}">{}</span>', text, Truncator(text).chars(length))


_ADMIN_ACTOR = re.compile(r"^admin:user#(\d+)$")


def usernames(actors: Iterable[str]) -> dict[int, str]:
    """Usernames of the users named by ``admin:user#<id>`` actors, by id."""
    ids = {int(match.group(1)) for actor in actors if (match := _ADMIN_ACTOR.match(actor))}
    if not ids:
        return {}
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


def actor_text(actor: str, names: dict[int, str]) -> str:
    """Who caused an audit entry, in words: "admin root", "event passing.status", "task issue"."""
    match = _ADMIN_ACTOR.match(actor)
    if match:
        user_id = int(match.group(1))
        return f"admin {names[user_id]}" if user_id in names else f"admin (user #{user_id}, deleted)"
    kind, _sep, rest = actor.partition(":")
    if kind == "event":
        rest = rest.removeprefix("org.openedx.learning.").removesuffix(".v1")
    return f"{kind} {rest}".strip()


def ledger_url(**params) -> str:
    """The ledger list, filtered by ``params`` (admin lookups)."""
    url = reverse("admin:badges_bridge_badgeissuance_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def count_link(count: int, **params) -> str:
    """A count that links to the matching ledger rows (a plain 0 when there are none)."""
    if not count:
        return mark_safe('<span class="bb-zero">0</span>')  # noqa: S308 - a constant
    return format_html('<a href="{}">{}</a>', ledger_url(**params), count)


def provider_name(kind: str) -> str:
    """A provider's name for people ("Credly"), or its code when it is not registered."""
    try:
        return get_provider_class(kind).display_name
    except ConfigurationError:
        return kind


def course_key_problem(raw: str) -> str:
    """Why ``raw`` is not a course key, with an example ('' when it is one)."""
    value = raw.strip()
    try:
        CourseKey.from_string(value)
    except InvalidKeyError:
        pass
    else:
        return ""
    embedded = re.search(r"course-v1:[^/?#\s]+", value)
    if embedded and embedded.group(0) != value:
        return (
            f"{value!r} is not a course key; it looks like a course URL. Enter only its course key, "
            f"{embedded.group(0)!r}."
        )
    words = [word for word in re.split(r"[\s/]+", value) if word]
    suggestion = f"course-v1:{'+'.join(words)}" if len(words) == 3 else COURSE_KEY_EXAMPLE
    return (
        f"{value!r} is not a course key. A course key looks like {suggestion!r}: 'course-v1:', then the "
        "organization, course number and run joined by '+', as in the course's URL."
    )


class HealthFilter(admin.SimpleListFilter):
    """Rows that need a look: in progress, failing or dead (per operation), stuck."""

    title = _("needs attention")
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [
            ("in_progress", _("In progress")),
            ("failing_issue", _("Failing to issue")),
            ("failing_revoke", _("Failing to revoke")),
            ("dead_issue", _("Dead: could not issue")),
            ("dead_revoke", _("Dead: could not revoke")),
            ("stuck", _("Stuck: due, but nobody works on it")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "in_progress":
            return queryset.filter(state__in=api.BUCKETS["in_progress"])
        if value == "stuck":
            return queryset.filter(api.stuck_filter())
        if value in ("failing_issue", "failing_revoke", "dead_issue", "dead_revoke"):
            state, operation = value.split("_")
            return queryset.filter(
                state=IssuanceState.FAILED if state == "failing" else IssuanceState.DEAD, operation=operation
            )
        return queryset


class CourseFilter(admin.SimpleListFilter):
    """The course of the row's course badge; a value that is not a course key says so instead of failing."""

    title = _("course")
    parameter_name = "course"

    def lookups(self, request, model_admin):
        keys = CourseBadge.objects.order_by("course_key").values_list("course_key", flat=True).distinct()
        return [(str(key), str(key)) for key in keys]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        problem = course_key_problem(value)
        if problem:
            messages.warning(request, f"The course filter was not applied: {problem}")
            return queryset.none()
        return queryset.filter(course_badge__course_key=CourseKey.from_string(value.strip()))


class ProviderFilter(admin.SimpleListFilter):
    """Provider accounts by provider, with the providers' names."""

    title = _("provider")
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [(kind, provider_name(kind)) for kind in sorted(provider_paths())]

    def queryset(self, request, queryset):
        return queryset.filter(provider=self.value()) if self.value() else queryset
