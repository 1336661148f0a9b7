"""The promise of the ledger, checked against a fake provider: "exactly once".

Once the ledger has settled, every qualifying learner holds exactly one live badge
of the course badge's template at the provider and the ledger row names it; every
other learner holds none; no row has work left, a lease or a badge waiting for a
reconcile; and every badge in the rows' history is live at the provider exactly
when the history says so. The fault tests, the demo-sized load test and anyone
staging a failure can call :func:`assert_exactly_once` (or read the problems from
:func:`exactly_once_problems`), whatever the number of learners: the fake's store
is read once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from badges_bridge.models import AwardStatus, BadgeIssuance, CourseBadge, IssuanceState, IssuedBadge
from badges_bridge.testing.harness import ProviderHarness

S = IssuanceState
#: States in which a row still has work to do.
WORK_LEFT_STATES = (S.PENDING, S.ISSUING, S.FAILED, S.REVOKE_PENDING)
#: Settled states of a learner who holds no badge.
NO_BADGE_STATES = (S.REVOKED, S.NOT_MET, S.AWAITING_APPROVAL, S.DECLINED)
#: History statuses of a badge that must not be live at the provider.
NOT_LIVE_STATUSES = (AwardStatus.REVOKED, AwardStatus.GONE, AwardStatus.UNDONE)
#: Problems listed in an assertion message at most.
SHOWN_PROBLEMS = 20


def _by_email(learners: Iterable[Any]) -> dict[str, Any]:
    return {(learner.email or "").lower(): learner for learner in learners}


def _row_problems(rows: dict[int, BadgeIssuance]) -> list[str]:
    problems = []
    for row in rows.values():
        if row.state in WORK_LEFT_STATES or row.lease_token:
            problems.append(f"row {row.pk} (user {row.user_id}) has work left: {row.state}, lease {row.lease_token!r}")
    return problems


def _learner_problems(
    live: dict[str, list[dict]],
    rows: dict[int, BadgeIssuance],
    harness: ProviderHarness,
    qualifying: dict[str, Any],
    others: dict[str, Any],
) -> list[str]:
    problems = []
    for email, learner in qualifying.items():
        awards = live.pop(email, [])
        row = rows.get(learner.pk)
        ids = [harness.award_id(award) for award in awards]
        if len(ids) != 1:
            problems.append(f"qualifying user {learner.pk} holds {len(ids)} live badges at the provider: {ids}")
        if row is None:
            problems.append(f"qualifying user {learner.pk} has no ledger row")
        elif row.state != S.ISSUED or (len(ids) == 1 and row.external_id != ids[0]):
            problems.append(
                f"qualifying user {learner.pk}: the row says {row.state} with badge {row.external_id!r}, "
                f"the provider holds {ids}"
            )
    for email, learner in others.items():
        awards = live.pop(email, [])
        row = rows.get(learner.pk)
        if awards:
            ids = [harness.award_id(award) for award in awards]
            problems.append(f"user {learner.pk}, who does not qualify, holds live badges at the provider: {ids}")
        if row is not None and row.state not in NO_BADGE_STATES:
            problems.append(f"user {learner.pk}, who does not qualify, has a row in state {row.state}")
    for email, awards in live.items():
        ids = [harness.award_id(award) for award in awards]
        problems.append(f"live badges at the provider for an address of no learner checked ({email}): {ids}")
    return problems


def _history_problems(rows: dict[int, BadgeIssuance], harness: ProviderHarness, account: str) -> list[str]:
    problems = []
    by_id = {row.pk: row for row in rows.values()}
    history = IssuedBadge.objects.filter(issuance_id__in=list(by_id)).values_list(
        "issuance_id", "external_id", "status"
    )
    for issuance_id, external_id, status in history.iterator():
        row = by_id[issuance_id]
        live = harness.award_state(external_id, account).is_live
        if status == AwardStatus.UNCONFIRMED:
            problems.append(f"row {issuance_id}: badge {external_id} is still waiting for a reconcile")
        elif status == AwardStatus.LIVE and not (row.state == S.ISSUED and row.external_id == external_id and live):
            problems.append(
                f"row {issuance_id} ({row.state}, badge {row.external_id!r}): the history says badge {external_id} "
                f"is live, the provider says {harness.award_state(external_id, account).value}"
            )
        elif status in NOT_LIVE_STATUSES and live:
            problems.append(f"row {issuance_id}: the history says badge {external_id} is {status}, yet it is live")
    return problems


def exactly_once_problems(
    harness: ProviderHarness,
    badge: CourseBadge,
    qualifying: Iterable[Any],
    others: Iterable[Any] = (),
    account: str = "main",
) -> list[str]:
    """Every way the ledger and the fake provider break "exactly once" for these learners (empty: none).

    ``qualifying`` must each hold exactly one live badge of the course badge's template, named by an
    issued row; ``others`` none. Live badges of the template for any other address are reported too.
    """
    qualifying_by_email, others_by_email = _by_email(qualifying), _by_email(others)
    user_ids = [learner.pk for learner in [*qualifying_by_email.values(), *others_by_email.values()]]
    rows = {
        row.user_id: row
        for row in BadgeIssuance.objects.filter(Q(course_badge=badge) & Q(user_id__in=user_ids)).iterator()
    }
    live = harness.live_awards_by_email(badge.template.external_id, account)
    problems = _row_problems(rows)
    problems += _learner_problems(live, rows, harness, qualifying_by_email, others_by_email)
    problems += _history_problems(rows, harness, account)
    return problems


def assert_exactly_once(
    harness: ProviderHarness,
    badge: CourseBadge,
    qualifying: Iterable[Any],
    others: Iterable[Any] = (),
    account: str = "main",
) -> None:
    """Raise AssertionError listing the problems found by :func:`exactly_once_problems`, if any."""
    problems = exactly_once_problems(harness, badge, qualifying, others, account)
    if problems:
        shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
        more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise AssertionError(f"exactly once is broken ({len(problems)} problem(s)):\n  {shown}{more}")
