"""The learner's view of their badges: earned, on their way, taken back, available, and what is sent to whom.

Everything here reads; :mod:`badges_bridge.api` exposes it, and the learner page and the
REST API call the API. Texts are translated in the active language when they are built.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from opaque_keys.edx.keys import CourseKey

from badges_bridge import compat, privacy, sharing
from badges_bridge.conf import get_setting
from badges_bridge.config_cache import member_courses
from badges_bridge.criteria import CERTIFICATE_EARNED
from badges_bridge.data import (
    AvailableBadge,
    CourseCertificate,
    CourseGrade,
    DataRecipient,
    LearnerBadge,
    LearnerPrivacy,
    Progress,
)
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import (
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    Criterion,
    EvidenceFact,
    IssuanceState,
    Operation,
    RevokedBy,
    SeriesProgress,
)
from badges_bridge.providers import get_provider_class
from badges_bridge.providers.base import AwardState, BaseProvider

S = IssuanceState

#: Ledger states and the learner's status for them (``not_met`` is internal and ``declined``, a staff decision,
#: is not shown: see HIDDEN_STATES); a failing or dead revoke reads as revoked (the decision stands), a dead
#: issue as failed (see _status_of).
_STATUS = {
    S.AWAITING_APPROVAL: "awaiting_approval",
    S.PENDING: "processing",
    S.ISSUING: "processing",
    S.FAILED: "processing",
    S.DEAD: "failed",
    S.WAITING_CONSENT: "waiting_consent",
    S.ISSUED: "issued",
    S.REVOKE_PENDING: "revoked",
    S.REVOKED: "revoked",
    S.REJECTED: "rejected",
}
#: Statuses of badges the learner holds or will hold (the others were taken back or declined).
CURRENT_STATUSES = frozenset({"awaiting_approval", "processing", "waiting_consent", "failed", "issued"})
#: Ledger rows never shown to their learner: the criterion's latest "not met", and awards course staff declined.
HIDDEN_STATES = (S.NOT_MET, S.DECLINED)


def _status_of(row: BadgeIssuance) -> str:
    if row.state in (S.FAILED, S.DEAD) and row.operation == Operation.REVOKE:
        return "revoked"
    return _STATUS[row.state]


def issuer_name(course_key: CourseKey) -> str:
    """The issuing organization: BADGES_BRIDGE_ISSUER_NAME, else the platform's name, else the course's org."""
    return get_setting("ISSUER_NAME") or getattr(settings, "PLATFORM_NAME", "") or course_key.org


def _provider_class(kind: str) -> type[BaseProvider] | None:
    try:
        return get_provider_class(kind)
    except ConfigurationError:  # a provider kind no longer installed is shown by its key
        return None


def provider_name(kind: str) -> str:
    """The provider's display name ("Credly"), or its key when the provider is not installed."""
    provider = _provider_class(kind)
    return provider.display_name if provider is not None else kind


def _number(value: Decimal) -> str:
    """A percentage without trailing zeros: 80, 72.5."""
    return f"{value.normalize():f}"


# -- earned, on their way, taken back --------------------------------------------------------------------------


def learner_badges(user_id: int) -> list[LearnerBadge]:
    """Every badge of one learner, newest first, in learner-facing terms (never the rows of HIDDEN_STATES)."""
    rows = (
        BadgeIssuance.objects.filter(user_id=user_id)
        .exclude(state__in=HIDDEN_STATES)
        .select_related("course_badge__template__account")
        .order_by("-qualified_at", "-id")
    )
    hold = privacy.hold_reason(user_id) if any(row.state == S.WAITING_CONSENT for row in rows) else ""
    now = timezone.now()
    return [_learner_badge(row, hold, now) for row in rows]


def _badge_date(row: BadgeIssuance) -> datetime | None:
    """The date the provider's badge carries.

    When the learner met the criterion; when the course badge does not send that date, when it was issued.
    """
    if EvidenceFact.COMPLETION_DATE in row.course_badge.evidence_facts():
        return row.qualified_at
    return row.issued_at or row.qualified_at


def _expires_at(row: BadgeIssuance) -> datetime | None:
    days = row.course_badge.expires_after_days
    start = _badge_date(row)
    return start + timedelta(days=days) if days and start else None


def _learner_badge(row: BadgeIssuance, hold: str, now: datetime) -> LearnerBadge:
    badge, template = row.course_badge, row.course_badge.template
    kind = template.account.provider
    issuer = issuer_name(badge.course_key)
    expires_at = _expires_at(row)
    status = _status_of(row)
    expired = row.provider_state == AwardState.EXPIRED or (expires_at is not None and expires_at <= now)
    if status in ("issued", "revoked") and expired:
        status = "expired"
    issued = status == "issued"
    acceptance = row.provider_state if issued and row.provider_state in ("pending", "accepted") else ""
    share = None
    if issued and row.public_url and acceptance != "pending":
        share = sharing.share_links(
            name=template.name,
            issuer=issuer,
            url=row.public_url,
            image_url=template.image_url,
            issued_at=_badge_date(row),
            expires_at=expires_at,
            credential_id=row.external_id,
        )
    return LearnerBadge(
        id=row.pk,
        course_key=str(badge.course_key),
        course_name=compat.course_display_name(badge.course_key),
        name=template.name,
        description=template.description,
        image_url=template.image_url,
        provider=kind,
        provider_name=provider_name(kind),
        issuer=issuer,
        status=status,
        status_text=_status_text(row, status, acceptance, hold),
        acceptance=acceptance,
        public=row.provider_public if issued else None,
        public_url=row.public_url if issued else "",
        credential_id=row.external_id if issued else "",
        qualified_at=row.qualified_at,
        issued_at=row.issued_at,
        expires_at=expires_at,
        revoked_at=row.revoked_at,
        reason=_reason(row, status),
        share=share,
    )


def _status_text(row: BadgeIssuance, status: str, acceptance: str, hold: str) -> str:
    """The badge's state in the learner's words."""
    provider = provider_name(row.course_badge.template.account.provider)
    if status == "waiting_consent":
        if hold == privacy.OPTED_OUT:
            return _("On hold: you opted out of new badges.")
        return _("Waiting for your consent to send your details to {provider}.").format(provider=provider)
    if status == "awaiting_approval":
        return _("You met the criterion: the course team reviews the award before the badge is issued.")
    if status == "failed":
        return _("We could not issue this badge. The site's support team has been told and will look into it.")
    if status == "processing":
        return _("Being issued: this usually takes a few minutes.")
    if status == "issued":
        return _issued_text(row, acceptance, provider)
    if status == "expired":
        return _("Expired.")
    if status == "revoked":
        return _("Being revoked.") if row.state == S.REVOKE_PENDING else _("Revoked.")
    return _("You declined this badge at {provider}.").format(provider=provider)


def _issued_text(row: BadgeIssuance, acceptance: str, provider: str) -> str:
    if acceptance == "pending":
        return _("Check your e-mail to accept this badge at {provider}.").format(provider=provider)
    provider_class = _provider_class(row.course_badge.template.account.provider)
    accepts = provider_class is not None and provider_class.learner_accepts
    if row.provider_public is True:
        return _("Accepted and public.") if accepts else _("Issued and public.")
    if row.provider_public is False:
        return _("Accepted and private: only you can see it.") if accepts else _("Issued and private.")
    return _("Accepted.") if accepts and acceptance == "accepted" else _("Issued.")


def _reason(row: BadgeIssuance, status: str) -> str:
    """Why a badge was taken back, expired or declined ('' when no reason is known)."""
    if status == "rejected":
        return _("Declining a badge deletes it for good; it is not issued again automatically.")
    if status not in ("revoked", "expired"):
        return ""
    if row.revoke_reason:
        return row.revoke_reason
    if row.revoked_by == RevokedBy.POLICY:
        return str(get_setting("REVOKE_REASON"))
    if row.revoked_by == RevokedBy.PROVIDER and row.provider_state == AwardState.DELETED:
        return _("The badge was deleted at the provider.")
    return ""


# -- available badges and progress -------------------------------------------------------------------------------


def criterion_text(criterion: str, threshold: Decimal | None, modes: frozenset[str]) -> str:
    """What the learner must do, in words."""
    if criterion == Criterion.GRADE_AT_LEAST and threshold is not None:
        return _("Reach a course grade of at least {threshold}%.").format(threshold=_number(threshold))
    if criterion == Criterion.CERTIFICATE:
        if modes:
            return _("Earn a certificate in the course, in one of these modes: {modes}.").format(
                modes=", ".join(sorted(modes))
            )
        return _("Earn a certificate in the course.")
    return _("Pass the course.")


def progress_for(
    criterion: str,
    threshold: Decimal | None,
    modes: frozenset[str],
    grade: CourseGrade | None,
    certificate: CourseCertificate | None,
) -> Progress:
    """How far a learner is towards one criterion, from their grade and certificate."""
    if criterion == Criterion.GRADE_AT_LEAST and threshold is not None:
        return _grade_progress(threshold, grade)
    if criterion == Criterion.CERTIFICATE:
        return _certificate_progress(modes, certificate)
    return _passed_progress(grade)


def _grade_progress(threshold: Decimal, grade: CourseGrade | None) -> Progress:
    if grade is None or grade.percent is None:
        return Progress(met=False, text=_("No grade yet."), target=threshold, percent_done=0)
    current = grade.percent
    done = 100 if threshold <= 0 else min(100, int(current * 100 / threshold))
    values = {"current": _number(current), "target": _number(threshold)}
    if current >= threshold:
        text = _("Your grade of {current}% meets the {target}% needed.").format(**values)
    else:
        text = _("Your current grade is {current}%; {target}% is needed.").format(**values)
    return Progress(met=current >= threshold, text=text, current=current, target=threshold, percent_done=done)


def _passed_progress(grade: CourseGrade | None) -> Progress:
    if grade is None:
        return Progress(met=False, text=_("No grade yet."))
    if grade.passed:
        return Progress(met=True, text=_("You passed the course."), current=grade.percent, percent_done=100)
    if grade.percent is None:
        return Progress(met=grade.passed, text=_("You have not passed the course yet."))
    text = _("Your current grade is {current}%; you have not passed the course yet.").format(
        current=_number(grade.percent)
    )
    return Progress(met=False if grade.passed is False else None, text=text, current=grade.percent)


def _certificate_progress(modes: frozenset[str], certificate: CourseCertificate | None) -> Progress:
    if certificate is None or certificate.status != CERTIFICATE_EARNED:
        return Progress(met=False, text=_("No certificate yet."), percent_done=0)
    if not modes or certificate.mode in modes:
        return Progress(met=True, text=_("You earned a certificate."), percent_done=100)
    if not certificate.mode:
        return Progress(met=None, text=_("You earned a certificate; its mode is not known here."))
    text = _("Your {mode} certificate does not count for this badge; it needs one of: {modes}.").format(
        mode=certificate.mode, modes=", ".join(sorted(modes))
    )
    return Progress(met=False, text=text, percent_done=0)


def _still_available(row: BadgeIssuance | None) -> bool:
    """Whether a badge with this ledger row (None: none yet) can still be earned by the learner."""
    if row is None or row.state == S.NOT_MET:
        return True
    return row.state == S.REVOKED and row.revoked_by == RevokedBy.POLICY


def available_badges(user_id: int) -> list[AvailableBadge]:
    """Badges of the learner's enrolled courses that they do not hold, each with their progress."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return []
    courses = compat.enrolled_course_keys(user)
    badges = _offered(courses)
    rows = {row.course_badge_id: row for row in BadgeIssuance.objects.filter(user_id=user_id, course_badge__in=badges)}
    standing: dict[str, tuple[CourseGrade | None, CourseCertificate | None]] = {}
    result = []
    for badge in badges:
        if not _still_available(rows.get(badge.pk)):
            continue
        if badge.criterion == Criterion.SERIES:
            result.append(_available_series(badge, user_id))
            continue
        key = str(badge.course_key)
        if key not in standing:
            standing[key] = (
                compat.course_grade(user, badge.course_key),
                compat.course_certificate(user, badge.course_key),
            )
        grade, certificate = standing[key]
        modes = badge.modes()
        kind = badge.template.account.provider
        result.append(
            AvailableBadge(
                course_badge_id=badge.pk,
                course_key=key,
                course_name=compat.course_display_name(badge.course_key),
                name=badge.template.name,
                description=badge.template.description,
                image_url=badge.template.image_url,
                provider=kind,
                provider_name=provider_name(kind),
                criterion=badge.criterion,
                criterion_text=criterion_text(badge.criterion, badge.grade_threshold, modes),
                progress=progress_for(badge.criterion, badge.grade_threshold, modes, grade, certificate),
            )
        )
    return result


def _offered(courses: list[CourseKey]) -> list[CourseBadge]:
    """The enabled badges of these courses, and the enabled series badges that list one of them."""
    enrolled = {str(key) for key in courses}
    candidates = (
        CourseBadge.objects.filter(
            Q(course_key__in=courses) | Q(criterion=Criterion.SERIES),
            enabled=True,
            template__state=BadgeTemplate.State.ACTIVE,
            template__account__enabled=True,
        )
        .select_related("template__account")
        .order_by("course_key", "template__name", "id")
    )
    return [
        badge
        for badge in candidates
        if (member_courses(badge.criterion, badge.series) & enrolled)
        or (badge.criterion != Criterion.SERIES and str(badge.course_key) in enrolled)
    ]


def series_text(courses: list[str], required: int) -> str:
    """What a series badge asks, in words, with the courses' names."""
    names = ", ".join(courses)
    if required >= len(courses):
        return _("Complete each of these courses: {courses}.").format(courses=names)
    return _("Complete {required} of these {count} courses: {courses}.").format(
        required=required, count=len(courses), courses=names
    )


def series_progress(met: int, required: int) -> Progress:
    """How many courses of a series the learner has met, of those needed."""
    text = _("{met} of the {required} courses needed are done.").format(met=met, required=required)
    done = min(100, met * 100 // required) if required else 100
    return Progress(met=met >= required, text=text, current=Decimal(met), target=Decimal(required), percent_done=done)


def _available_series(badge: CourseBadge, user_id: int) -> AvailableBadge:
    courses = badge.series_courses()
    met = SeriesProgress.objects.filter(
        user_id=user_id, course_badge=badge, met=True, course_key__in=[item.course_key for item in courses]
    ).count()
    kind = badge.template.account.provider
    return AvailableBadge(
        course_badge_id=badge.pk,
        course_key=str(badge.course_key),
        course_name=compat.course_display_name(badge.course_key),
        name=badge.template.name,
        description=badge.template.description,
        image_url=badge.template.image_url,
        provider=kind,
        provider_name=provider_name(kind),
        criterion=badge.criterion,
        criterion_text=series_text(
            [compat.course_display_name(item.course_key) for item in courses], badge.required_count()
        ),
        progress=series_progress(met, badge.required_count()),
    )


# -- privacy -----------------------------------------------------------------------------------------------------


def _fields_sent(facts: set[str]) -> tuple[str, ...]:
    """The personal data a provider receives, in words, given the evidence facts its badges send."""
    fields = [_("your name"), _("your e-mail address"), _("a number that identifies your account on this site")]
    if EvidenceFact.COURSE in facts:
        fields.append(_("the course's name and web address, and what you achieved in it"))
    if EvidenceFact.COMPLETION_DATE in facts:
        fields.append(_("the date you earned the badge"))
    if EvidenceFact.GRADE in facts:
        fields.append(_("your course grade"))
    return tuple(fields)


def _facts_by_provider(user_id: int, available: list[AvailableBadge]) -> dict[str, set[str]]:
    """Per provider, the evidence facts the learner's badges send (or would send) there.

    The grade counts only where there is one: a badge with a recorded grade, or one decided by the grade.
    """
    sent: dict[str, set[str]] = defaultdict(set)

    def add(badge: CourseBadge, has_grade: bool) -> None:
        facts = set(badge.evidence_facts())
        if not has_grade:
            facts.discard(EvidenceFact.GRADE)
        sent[badge.template.account.provider] |= facts

    rows = (
        BadgeIssuance.objects.filter(user_id=user_id)
        .exclude(state__in=HIDDEN_STATES)
        .select_related("course_badge__template__account")
    )
    for row in rows:
        add(row.course_badge, row.grade is not None)
    ids = [badge.course_badge_id for badge in available]
    for badge in CourseBadge.objects.filter(pk__in=ids).select_related("template__account"):
        add(badge, badge.criterion == Criterion.GRADE_AT_LEAST)
    return sent


def learner_privacy(user_id: int, badges: list[LearnerBadge], available: list[AvailableBadge]) -> LearnerPrivacy:
    """The learner's choices, and for each provider what it receives about them and for which badges."""
    preference = privacy.preference_of(user_id)
    by_provider: dict[str, list[str]] = defaultdict(list)
    for badge in badges:
        if badge.status in CURRENT_STATUSES:
            by_provider[badge.provider].append(badge.name)
    for badge in available:
        by_provider[badge.provider].append(badge.name)
    facts = _facts_by_provider(user_id, available)
    recipients = tuple(
        DataRecipient(
            provider=kind,
            provider_name=provider_name(kind),
            fields=_fields_sent(facts[kind]),
            badges=tuple(dict.fromkeys(names)),
        )
        for kind, names in sorted(by_provider.items())
    )
    return LearnerPrivacy(
        consent_required=privacy.consent_required(),
        consent_given=bool(preference and preference.has_consent),
        consent_given_at=preference.consent_given_at if preference else None,
        consent_withdrawn_at=preference.consent_withdrawn_at if preference else None,
        opted_out=bool(preference and preference.opted_out),
        opted_out_at=preference.opted_out_at if preference else None,
        sending_allowed=not privacy.reason_for(preference),
        waiting=sum(1 for badge in badges if badge.status == "waiting_consent"),
        recipients=recipients,
    )
