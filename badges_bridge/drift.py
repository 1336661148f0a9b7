"""Detect badges deleted or expired on the provider side (Accredible sends no webhooks).

For each account, the provider's badges of the templates in use are listed page
by page and compared with the ledger's issued rows. A badge the listing does not
show is read directly before anything changes. A row whose badge is gone,
expired or revoked at the provider becomes revoked (and is not re-awarded
automatically); one the learner rejected becomes rejected. The audit log says why.
The rows change through :func:`badges_bridge.ledger.record_provider_badge`, as for
provider notifications; a row a worker holds is left for the next check.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from badges_bridge import ledger
from badges_bridge.accounts import provider_for
from badges_bridge.exceptions import NotFoundError
from badges_bridge.models import BadgeIssuance, IssuanceState, ProviderAccount
from badges_bridge.providers.base import AwardState, BaseProvider

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
    provider = provider_for(account)
    remote = {award.external_id: award for award in provider.iter_awards(sorted(by_template))}
    changed = 0
    for template_rows in by_template.values():
        for row in template_rows:
            award = remote.get(row.external_id)
            state = award.state if award is not None else _confirmed_state(provider, row.external_id)
            if not state.is_live:
                changed += _mark(row, state)
    return changed


def _confirmed_state(provider: BaseProvider, external_id: str) -> AwardState:
    """The state of a badge the listing did not show, read directly.

    A listing read page by page while badges come and go can skip a badge that still
    exists, so absence alone never counts as deletion.
    """
    try:
        return provider.get_award(external_id).state
    except NotFoundError:
        return AwardState.DELETED


def _mark(row: BadgeIssuance, provider_state: AwardState) -> int:
    """Record that the row's badge is no longer live at the provider (rejected, revoked, expired, gone)."""
    result = ledger.record_provider_badge(
        row.course_badge.template.account_id, row.external_id, provider_state, "task:drift", issuance_id=row.pk
    )
    return int(result.outcome == ledger.ProviderUpdate.CHANGED)
