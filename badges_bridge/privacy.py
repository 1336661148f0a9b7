"""The learner's privacy choices: consent (when the site requires it) and opt-out.

This module reads and records the choices (:class:`~badges_bridge.models.LearnerPreference`);
the ledger asks it, at event time, at claim time and before every provider request of an
issue, whether a learner's personal data may be sent. It never changes ledger rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import DateTimeField, Exists, F, OuterRef, Q, Value
from django.utils import timezone

from badges_bridge import tombstones
from badges_bridge.conf import get_setting
from badges_bridge.models import LearnerPreference, RetiredLearner

#: Why a learner's badges are held back (the value of :func:`hold_reason`).
NO_CONSENT = "no_consent"
OPTED_OUT = "opted_out"
#: A retired learner: nothing is ever recorded or sent for them again (see :func:`event_gate`).
RETIRED = "retired"

#: Audit messages, per reason.
HOLD_MESSAGES = {
    NO_CONSENT: "held: the learner has not consented to sending their data to the provider",
    OPTED_OUT: "held: the learner opted out of new badges",
}


def consent_required() -> bool:
    """Whether the site asks for the learner's consent before anything is sent (BADGES_BRIDGE_REQUIRE_CONSENT)."""
    return bool(get_setting("REQUIRE_CONSENT"))


def preference_of(user_id: int) -> LearnerPreference | None:
    """The learner's recorded choices, or None when they never made one."""
    return LearnerPreference.objects.filter(user_id=user_id).first()


def reason_for(preference: LearnerPreference | None) -> str:
    """Why nothing may be sent for a learner with these choices ('' when it may)."""
    if preference is not None and preference.opted_out:
        return OPTED_OUT
    if consent_required() and (preference is None or not preference.has_consent):
        return NO_CONSENT
    return ""


def hold_reason(user_id: int) -> str:
    """Why the learner's personal data may not be sent to a provider now ('' when it may); one query."""
    return reason_for(preference_of(user_id))


def event_gate(user_id: int) -> str:
    """RETIRED for a retired learner, else :func:`hold_reason`, in one query (on the receivers' path).

    The tombstone and the learner's choices are read together: a UNION of the retired learner's
    tombstone (if any) and their preference row (if any), both as (kind, consent given, consent
    withdrawn, opted out).
    """
    no_time = Value(None, output_field=DateTimeField())
    retired = (
        RetiredLearner.objects.filter(digest__in=tombstones.digests(user_id))
        .annotate(kind=Value(RETIRED), given=no_time, withdrawn=no_time, opted=no_time)
        .values_list("kind", "given", "withdrawn", "opted")
    )
    # Every column is an annotation, added in the same order on both sides: Django 4.2 puts model
    # fields before annotations in a values_list(), which would misalign the UNION's columns.
    choices = (
        LearnerPreference.objects.filter(user_id=user_id)
        .annotate(
            kind=Value("choices"),
            given=F("consent_given_at"),
            withdrawn=F("consent_withdrawn_at"),
            opted=F("opted_out_at"),
        )
        .values_list("kind", "given", "withdrawn", "opted")
    )
    found = {kind: times for kind, *times in retired.union(choices)}
    if RETIRED in found:
        return RETIRED
    times = found.get("choices")
    preference = None
    if times is not None:
        preference = LearnerPreference(
            user_id=user_id, consent_given_at=times[0], consent_withdrawn_at=times[1], opted_out_at=times[2]
        )
    return reason_for(preference)


def gates(user_ids: Iterable[int]) -> dict[int, str]:
    """:func:`event_gate` of many learners in two queries: RETIRED, a hold reason, or '' per user id."""
    user_ids = set(user_ids)
    if not user_ids:
        return {}
    retired = tombstones.retired_among(user_ids)
    preferences = {pref.user_id: pref for pref in LearnerPreference.objects.filter(user_id__in=user_ids)}
    return {user_id: RETIRED if user_id in retired else reason_for(preferences.get(user_id)) for user_id in user_ids}


def held_users(user_ids: Iterable[int]) -> set[int]:
    """Those of these learners whose personal data may not be sent now; one query."""
    user_ids = set(user_ids)
    if not user_ids:
        return set()
    preferences = {pref.user_id: pref for pref in LearnerPreference.objects.filter(user_id__in=user_ids)}
    return {user_id for user_id in user_ids if reason_for(preferences.get(user_id))}


def sendable() -> Q:
    """A filter on ledger rows: those whose learner's personal data may be sent now."""
    opted_out = LearnerPreference.objects.filter(user_id=OuterRef("user_id"), opted_out_at__isnull=False)
    condition = ~Exists(opted_out)
    if consent_required():
        consented = LearnerPreference.objects.filter(
            user_id=OuterRef("user_id"), consent_given_at__isnull=False, consent_withdrawn_at__isnull=True
        )
        condition &= Exists(consented)
    return condition


def record_consent(user_id: int, given: bool) -> LearnerPreference:
    """Record that the learner gave (``given``) or withdrew their consent."""
    preference, _created = LearnerPreference.objects.get_or_create(user_id=user_id)
    now = timezone.now()
    if given:
        preference.consent_given_at, preference.consent_withdrawn_at = now, None
    elif preference.consent_given_at is not None and preference.consent_withdrawn_at is None:
        preference.consent_withdrawn_at = now
    preference.save()
    return preference


def record_opt_out(user_id: int, opted_out: bool) -> LearnerPreference:
    """Record that the learner opted out of new badges (``opted_out``) or back in."""
    preference, _created = LearnerPreference.objects.get_or_create(user_id=user_id)
    if opted_out and preference.opted_out_at is None:
        preference.opted_out_at = timezone.now()
    elif not opted_out:
        preference.opted_out_at = None
    preference.save()
    return preference
