"""Course staff's set-up of their course's badges: the service layer of the Studio page and the staff API.

Both the page and the REST API call these functions, so that they apply the same
rules: who may see a course's set-up, which templates a course may use, and that
every change raises the badge's version and is recorded (who, when, what).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

from badges_bridge import compat
from badges_bridge.conf import get_setting
from badges_bridge.exceptions import BadgesBridgeError, ConfigurationError
from badges_bridge.models import (
    BackfillRun,
    BackfillRunState,
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    CourseBadgeChange,
    CourseSettings,
    Criterion,
    IssuanceState,
    Operation,
    ProviderAccount,
    RevokePolicy,
)

log = logging.getLogger(__name__)

#: The fields of a course badge that course staff set; a change to any of them is recorded.
EDITABLE_FIELDS = (
    "template",
    "criterion",
    "grade_threshold",
    "certificate_modes",
    "series",
    "series_required",
    "earned_after",
    "earned_before",
    "revoke_policy",
    "expires_after_days",
    "requires_approval",
    "evidence",
    "suppress_notification",
    "enabled",
)


class CourseNotFoundError(Exception):
    """The course key is malformed or names no course of this site."""


def course_key_or_404(text: str) -> CourseKey:
    """The course key of an existing course, or CourseNotFoundError."""
    try:
        course_key = CourseKey.from_string(text)
    except InvalidKeyError:
        raise CourseNotFoundError(f"{text!r} is not a course key") from None
    if not compat.course_exists(course_key):
        raise CourseNotFoundError(f"no course {course_key}")
    return course_key


def can_manage(user, course_key: CourseKey) -> bool:
    """Whether the user may read and change the course's badge set-up (Studio write access)."""
    return bool(user is not None and user.is_authenticated and compat.has_studio_write_access(user, course_key))


def allowed_templates(course_key: CourseKey) -> QuerySet[BadgeTemplate]:
    """The synced, active templates of the enabled accounts this course's organisation may use."""
    accounts = [
        account.pk
        for account in ProviderAccount.objects.filter(enabled=True)
        if account.allows_course_org(course_key.org)
    ]
    return (
        BadgeTemplate.objects.filter(account_id__in=accounts, state=BadgeTemplate.State.ACTIVE)
        .select_related("account")
        .order_by("name", "id")
    )


def course_badges(course_key: CourseKey) -> QuerySet[CourseBadge]:
    """The course's badges, with their templates and accounts."""
    return CourseBadge.objects.filter(course_key=course_key).select_related("template__account").order_by("id")


def course_badge_or_none(course_key: CourseKey, badge_id: int) -> CourseBadge | None:
    """The course's badge with this id (None when the id is another course's badge, or no badge)."""
    return course_badges(course_key).filter(pk=badge_id).first()


def approval_queue(badge: CourseBadge) -> QuerySet[BadgeIssuance]:
    """The badge's ledger rows awaiting approval by course staff, oldest first, with their learners."""
    return (
        badge.issuances.filter(state=IssuanceState.AWAITING_APPROVAL)
        .select_related("user")
        .order_by("qualified_at", "id")
    )


def badge_issuances(badge: CourseBadge) -> QuerySet[BadgeIssuance]:
    """The badge's ledger rows, newest change first, with their learners (paginate them)."""
    return badge.issuances.select_related("user").order_by("-modified", "-id")


def usernames(user_ids: list[int]) -> list[str]:
    """The usernames of these users, in the same order (for staff pages only: never log them)."""
    from django.contrib.auth import get_user_model

    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    return [names[user_id] for user_id in user_ids if user_id in names]


def staff_actor(user) -> str:
    """How the ledger's audit log names a staff member acting on the Studio page or the staff API."""
    return f"staff:{user.pk}"


#: The counts shown for each badge, by name: which ledger rows each counts.
COUNTED = {
    "issued": ({IssuanceState.ISSUED}, None),
    "pending": ({IssuanceState.PENDING, IssuanceState.ISSUING, IssuanceState.FAILED}, Operation.ISSUE),
    "awaiting_approval": ({IssuanceState.AWAITING_APPROVAL}, None),
    "failed": ({IssuanceState.FAILED}, None),
    "dead": ({IssuanceState.DEAD}, None),
}


@dataclass
class BadgeSummary:
    """One course badge as the page and the API list it."""

    badge: CourseBadge
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def criterion_text(self) -> str:
        """The criterion in words."""
        return describe_criterion(self.badge)

    @property
    def expiry_text(self) -> str:
        """The expiry in words."""
        return describe_expiry(self.badge)


def summaries(course_key: CourseKey) -> list[BadgeSummary]:
    """The course's badges with their ledger counts, in one query for the counts."""
    badges = list(course_badges(course_key))
    rows = (
        BadgeIssuance.objects.filter(course_badge__in=badges)
        .values("course_badge_id", "state", "operation")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[int, dict[str, int]] = {badge.pk: dict.fromkeys(COUNTED, 0) for badge in badges}
    for row in rows:
        for name, (states, operation) in COUNTED.items():
            if row["state"] in states and (operation is None or row["operation"] == operation):
                counts[row["course_badge_id"]][name] += row["n"]
    return [BadgeSummary(badge, counts[badge.pk]) for badge in badges]


def _condition_text(criterion: str, threshold: Any, modes: Any) -> str:
    if criterion == Criterion.GRADE_AT_LEAST:
        return f"a course grade of at least {threshold} %"
    if criterion == Criterion.CERTIFICATE:
        return f"a certificate ({', '.join(sorted(modes))})" if modes else "a certificate"
    return "a pass"


def describe_criterion(badge: CourseBadge) -> str:
    """The criterion in words, with its window and revoke policy, e.g. "Pass the course. Never revoked."."""
    if badge.criterion == Criterion.SERIES:
        courses = badge.series_courses()
        count = badge.required_count()
        quantity = "all" if count == len(courses) else f"at least {count} of"
        parts = "; ".join(
            f"{item.course_key}: {_condition_text(item.criterion, item.grade_threshold, item.certificate_modes)}"
            for item in courses
        )
        text = f"Meet {quantity} {len(courses)} course(s) of the series ({parts})."
    elif badge.criterion == Criterion.GRADE_AT_LEAST:
        text = f"Reach a course grade of at least {badge.grade_threshold} %."
    elif badge.criterion == Criterion.CERTIFICATE:
        modes = sorted(badge.modes())
        text = f"Earn a certificate ({', '.join(modes)})." if modes else "Earn a certificate (any mode)."
    else:
        text = "Pass the course."
    if badge.earned_after and badge.earned_before:
        text += f" Only between {badge.earned_after:%Y-%m-%d %H:%M} and {badge.earned_before:%Y-%m-%d %H:%M} (UTC)."
    elif badge.earned_after:
        text += f" Only from {badge.earned_after:%Y-%m-%d %H:%M} (UTC)."
    elif badge.earned_before:
        text += f" Only until {badge.earned_before:%Y-%m-%d %H:%M} (UTC)."
    if badge.requires_approval:
        text += " Course staff approve each award."
    policies = {
        RevokePolicy.NEVER: "Never revoked.",
        RevokePolicy.CRITERION_UNMET: "Revoked when the criterion is no longer met.",
        RevokePolicy.CERTIFICATE_REVOKED: "Revoked only when the certificate is revoked.",
    }
    return f"{text} {policies.get(badge.revoke_policy, '')}".strip()


def describe_expiry(badge: CourseBadge) -> str:
    """The expiry in words."""
    days = badge.expires_after_days
    if not days:
        return "Does not expire (unless the template itself sets an expiry at the provider)."
    return f"Expires {days} day{'s' if days != 1 else ''} after it is awarded."


def _value(badge: CourseBadge, name: str) -> Any:
    """A field's value as recorded in the change history (JSON-friendly)."""
    if name == "template":
        return badge.template_id
    value = getattr(badge, name)
    if value is None or isinstance(value, (bool, int, str, list, dict)):
        return value
    return str(value)


def _snapshot(badge: CourseBadge) -> dict[str, Any]:
    return {name: _value(badge, name) for name in EDITABLE_FIELDS}


def stored_snapshot(badge: CourseBadge) -> dict[str, Any]:
    """The stored values of a saved badge's editable fields (before an edit is saved)."""
    return _snapshot(CourseBadge.objects.get(pk=badge.pk)) if badge.pk else {}


def _record(badge: CourseBadge, user, action: str, changes: dict[str, list[Any]]) -> CourseBadgeChange:
    return CourseBadgeChange.objects.create(
        course_badge=badge,
        course_key=badge.course_key,
        badge_name=badge.template.name,
        version=badge.version,
        changed_by=user if getattr(user, "pk", None) else None,
        action=action,
        changes=changes,
    )


def save_course_badge(badge: CourseBadge, user, before: dict[str, Any] | None = None) -> CourseBadgeChange | None:
    """Save a validated course badge (new or changed) and record who changed what.

    ``before``: :func:`stored_snapshot` taken before the edit was applied to ``badge`` (None for a new
    badge). Nothing is saved, and None returned, when an edit changes nothing.
    """
    created = badge.pk is None
    after = _snapshot(badge)
    changes = {name: [None if created else before.get(name), value] for name, value in after.items()}
    if not created:
        changes = {name: pair for name, pair in changes.items() if pair[0] != pair[1]}
        if not changes:
            return None
    action = "created" if created else "changed"
    if set(changes) == {"enabled"}:
        action = "enabled" if badge.enabled else "disabled"
    with transaction.atomic():
        badge.changed_by = user if getattr(user, "pk", None) else None
        badge.save()
        return _record(badge, user, action, changes)


def set_enabled(badge: CourseBadge, enabled: bool, user) -> CourseBadgeChange | None:
    """Enable or disable a course badge (a disabled badge issues nothing new; its badges stay)."""
    before = stored_snapshot(badge)
    badge.enabled = enabled
    return save_course_badge(badge, user, before)


def delete_course_badge(badge: CourseBadge, user) -> None:
    """Delete a course badge that has no ledger row; one that has can only be disabled (ConfigurationError)."""
    with transaction.atomic():
        locked = CourseBadge.objects.select_for_update().get(pk=badge.pk)
        if locked.has_issuances():
            raise ConfigurationError(
                "This badge has awards in the ledger, so it cannot be deleted; disable it instead."
            )
        _record(locked, user, "deleted", {})
        locked.delete()


def history(badge: CourseBadge) -> QuerySet[CourseBadgeChange]:
    """The badge's change history, newest first."""
    return badge.changes.select_related("changed_by").order_by("-at", "-id")


# -- backfill runs ---------------------------------------------------------------------------------------------
#
# Course staff start a backfill of one course badge; a run records the badges of the course's learners who
# already meet the criterion (badges_bridge.backfill.record, in chunks) and keeps its progress for the page and
# the API. The feeder then issues the recorded rows within the account's backfill budget.

#: The states of a run that is not finished.
ACTIVE_RUN_STATES = (BackfillRunState.QUEUED, BackfillRunState.RUNNING)


class _RunSupersededError(Exception):
    """The run was marked failed (taken as lost) while it ran: it stops."""


def badges_switched_off(course_key: CourseKey) -> bool:
    """Whether the course's badges are switched off (the Course App toggle)."""
    return CourseSettings.objects.filter(course_key=course_key, badges_enabled=False).exists()


def start_backfill(badge: CourseBadge, user) -> tuple[BackfillRun, bool]:
    """Start a backfill of the course's learners for this badge: the run, and whether it was created.

    Serialised on the course badge's row: while a run of the badge is queued or running, that run is
    returned (with False) and nothing new starts. A run with no progress for
    BADGES_BRIDGE_BACKFILL_RUN_STALE_SECONDS is first marked failed. The run's task is queued after
    commit. Raises ConfigurationError for a disabled badge or a course whose badges are switched off.
    """
    with transaction.atomic():
        locked = CourseBadge.objects.select_for_update().get(pk=badge.pk)
        if not locked.enabled:
            raise ConfigurationError("This badge is disabled: enable it before running a backfill.")
        if badges_switched_off(locked.course_key):
            raise ConfigurationError(
                "Badges are switched off for this course (Pages & Resources in Studio): switch them on before "
                "running a backfill."
            )
        _fail_stale_runs(locked)
        active = locked.backfill_runs.filter(state__in=ACTIVE_RUN_STATES).order_by("-created", "-id").first()
        if active is not None:
            return active, False
        now = timezone.now()
        run = BackfillRun.objects.create(
            course_badge=locked, started_by=user if getattr(user, "pk", None) else None, created=now, progress_at=now
        )
        transaction.on_commit(partial(_queue_run, run.pk))
    log.info("badges_bridge: backfill run %s of badge %s started by user %s", run.pk, badge.pk, run.started_by_id)
    return run, True


def _fail_stale_runs(badge: CourseBadge) -> None:
    """Mark failed the badge's unfinished runs that made no progress for the stale time."""
    seconds = int(get_setting("BACKFILL_RUN_STALE_SECONDS"))
    cutoff = timezone.now() - timedelta(seconds=seconds)
    stale = badge.backfill_runs.filter(state__in=ACTIVE_RUN_STATES).filter(
        Q(progress_at__lt=cutoff) | Q(progress_at__isnull=True, created__lt=cutoff)
    )
    for run_id in stale.values_list("pk", flat=True):
        log.warning("badges_bridge: backfill run %s made no progress for %s s; marked failed", run_id, seconds)
    stale.update(
        state=BackfillRunState.FAILED,
        finished_at=timezone.now(),
        message=(
            f"No progress for {seconds} seconds: the run was taken as lost (its worker stopped or its task was "
            "lost). The badges it recorded are kept; a new backfill reads the remaining learners."
        ),
    )


def _queue_run(run_id: int) -> None:
    from badges_bridge.tasks import queue_backfill_run

    queue_backfill_run(run_id)


def latest_backfill(badge: CourseBadge) -> BackfillRun | None:
    """The badge's latest backfill run (None when it never had one)."""
    return badge.backfill_runs.select_related("started_by").order_by("-created", "-id").first()


def perform_backfill(run_id: int) -> str:
    """Run a queued backfill run, writing its progress after every chunk of learners; what happened, in words.

    Does nothing for a run that is not queued (already running elsewhere, finished, or unknown), so a
    task delivered twice never runs a run twice.
    """
    from badges_bridge import api

    run = _claim(run_id)
    if run is None:
        return f"backfill run {run_id}: not queued, nothing to do"
    badge = run.course_badge
    try:
        result = api.backfill_course_badge(
            str(badge.course_key), badge_ids=[badge.pk], progress=partial(_write_progress, run.pk)
        )
    except _RunSupersededError:
        return f"backfill run {run_id}: stopped, it was marked failed meanwhile"
    except BadgesBridgeError as err:
        _finish(run.pk, BackfillRunState.FAILED, message=str(err))
        return f"backfill run {run_id}: failed: {err}"
    except Exception:  # noqa: BLE001 - the run must not stay "running" for ever; the error is logged
        log.exception("badges_bridge: backfill run %s failed", run_id)
        _finish(run.pk, BackfillRunState.FAILED, message="The backfill stopped on an unexpected error (logged).")
        return f"backfill run {run_id}: failed on an unexpected error"
    _finish(run.pk, BackfillRunState.DONE, result=result)
    return f"backfill run {run_id}: {result.describe()}"


def _claim(run_id: int) -> BackfillRun | None:
    """Mark a queued run running (None when it is not queued)."""
    with transaction.atomic():
        run = BackfillRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.state != BackfillRunState.QUEUED:
            return None
        run.state = BackfillRunState.RUNNING
        run.progress_at = timezone.now()
        run.total = compat.enrollment_count(run.course_badge.course_key)
        run.save(update_fields=["state", "progress_at", "total"])
    return run


def _counts(result) -> dict[str, int]:
    return {
        "read": result.learners,
        "recorded": result.recorded,
        "existing": result.existing,
        "not_met": result.not_met,
    }


def _write_progress(run_id: int, result) -> None:
    """Write a running run's counts; stop the run (_RunSupersededError) when it is no longer running."""
    written = BackfillRun.objects.filter(pk=run_id, state=BackfillRunState.RUNNING).update(
        progress_at=timezone.now(), **_counts(result)
    )
    if not written:
        raise _RunSupersededError(run_id)


def _finish(run_id: int, state: str, *, result=None, message: str = "") -> None:
    """Record the end of a running run (a run marked failed meanwhile keeps its state)."""
    now = timezone.now()
    fields: dict[str, Any] = {"state": state, "finished_at": now, "progress_at": now, "message": message}
    if result is not None:
        fields.update(_counts(result), total=result.learners)
    BackfillRun.objects.filter(pk=run_id, state=BackfillRunState.RUNNING).update(**fields)
