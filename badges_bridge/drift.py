"""Detect badges deleted or expired on the provider side (Accredible sends no webhooks).

For each account, the provider's badges of the templates in use are listed page
by page and compared with the ledger's issued rows; a row whose badge is gone
or expired at the provider becomes revoked, with the reason in the audit log.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from badges_bridge.accounts import provider_for
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, ProviderAccount
from badges_bridge.providers.base import AwardState

log = logging.getLogger(__name__)


def check_account_drift(account: ProviderAccount) -> int:
    """Reconcile one account's issued rows with the provider; returns how many rows changed."""
    rows = (
        BadgeIssuance.objects.filter(state=IssuanceState.ISSUED, course_badge__template__account=account)
        .exclude(external_id="")
        .select_related("course_badge__template")
    )
    by_template: dict[str, list[BadgeIssuance]] = defaultdict(list)
    for row in rows:
        by_template[row.course_badge.template.external_id].append(row)
    if not by_template:
        return 0
    remote = {award.external_id: award for award in provider_for(account).iter_awards(sorted(by_template))}
    changed = 0
    for template_rows in by_template.values():
        for row in template_rows:
            award = remote.get(row.external_id)
            if award is None:
                changed += _mark(row, AwardState.DELETED, "the badge was deleted at the provider")
            elif award.state in (AwardState.EXPIRED, AwardState.REVOKED):
                changed += _mark(row, award.state, f"the badge is {award.state.value} at the provider")
    return changed


def _mark(row: BadgeIssuance, provider_state: AwardState, message: str) -> int:
    now = timezone.now()
    with transaction.atomic():
        updated = BadgeIssuance.objects.filter(pk=row.pk, state=IssuanceState.ISSUED).update(
            state=IssuanceState.REVOKED, provider_state=provider_state.value, revoked_at=now, state_changed_at=now
        )
        if updated:
            AuditEntry.objects.create(
                issuance_id=row.pk,
                from_state=IssuanceState.ISSUED,
                to_state=IssuanceState.REVOKED,
                actor="task:drift",
                message=message,
                at=now,
            )
    log.info("badges_bridge: issuance %s: %s", row.pk, message)
    return updated
