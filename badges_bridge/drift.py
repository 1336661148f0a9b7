"""Detect badges deleted or expired on the provider side (Accredible sends no webhooks).

The check of one account streams both sides, so its memory does not grow with
the number of badges (see ``docs/decisions/0011-drift-check-in-bounded-memory.rst``):

1. The provider's badges of the templates in use are read page by page
   (``iter_awards``) and matched against the ledger LISTING_BATCH at a time, one
   query per batch. A row whose badge is listed live is noted as seen, one bit
   per row id. A row whose badge is listed rejected, revoked, expired or replaced
   is changed at once: the provider said so.
2. Only once the listing is complete, the issued rows are read course badge by
   course badge, in order of id, ROW_CHUNK at a time. The badge of each row the
   listing did not show live is
   read directly (``get_award``) before anything changes: a listing read page by
   page while badges come and go can skip a badge that still exists, so absence
   alone never counts as deletion.

A row whose badge is gone, expired or revoked at the provider becomes revoked
(and is not re-awarded automatically); one the learner rejected becomes rejected.
The audit log says why. The rows change through
:func:`badges_bridge.ledger.record_provider_badge`, as for provider
notifications; a row a worker holds is left for the next check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import NamedTuple, TypeVar

from django.db.models import Max, Min, QuerySet

from badges_bridge import ledger
from badges_bridge.accounts import provider_for
from badges_bridge.exceptions import NotFoundError
from badges_bridge.models import BadgeIssuance, CourseBadge, IssuanceState, ProviderAccount
from badges_bridge.providers.base import Award, AwardState, BaseProvider

log = logging.getLogger(__name__)

#: Provider badges matched against the ledger per query while the listing is read.
LISTING_BATCH = 500
#: Issued rows read per query when looking for the badges the listing did not show.
ROW_CHUNK = 2000

T = TypeVar("T")


class IssuedRow(NamedTuple):
    """What the check needs of an issued ledger row."""

    id: int
    external_id: str
    award_number: int


class SeenRows:
    """Ledger row ids between ``first`` and ``last`` (inclusive), one bit each.

    An id outside the range is never seen: a row issued after the check started
    has its badge read directly, like any badge the listing did not show.
    """

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.bits = bytearray((last - first) // 8 + 1 if last >= first else 0)

    def add(self, row_id: int) -> None:
        """Note that the row's badge was listed live."""
        if self.first <= row_id <= self.last:
            offset = row_id - self.first
            self.bits[offset >> 3] |= 1 << (offset & 7)

    def __contains__(self, row_id: int) -> bool:
        if not self.first <= row_id <= self.last:
            return False
        offset = row_id - self.first
        return bool(self.bits[offset >> 3] & (1 << (offset & 7)))


class DriftScan:
    """One account's drift check; counts what it did, for the log and the caller.

    Apart from one grouped query over the account's issued rows at the start, its queries touch the
    ledger table alone, through an index: a batch of listed badges by provider id, a chunk of rows by
    course badge and id. Joining the account's templates in every query let MariaDB scan all the
    account's rows for each batch and chunk.
    """

    def __init__(self, account: ProviderAccount) -> None:
        self.account = account
        self.listed = 0
        self.read_directly = 0
        self.changed = 0

    def run(self) -> int:
        """Check every issued row of the account; returns how many rows changed."""
        spans = {
            group["course_badge_id"]: (group["first"], group["last"])
            for group in issued_rows(self.account)
            .order_by()
            .values("course_badge_id")
            .annotate(first=Min("pk"), last=Max("pk"))
        }
        if not spans:
            return 0
        templates = sorted(
            set(CourseBadge.objects.filter(pk__in=list(spans)).values_list("template__external_id", flat=True))
        )
        provider = provider_for(self.account)
        seen = SeenRows(min(first for first, _ in spans.values()), max(last for _, last in spans.values()))
        try:
            for batch in batches(provider.iter_awards(templates), LISTING_BATCH):
                self._match_listed(batch, set(spans), seen)
            for course_badge_id, (first, _) in spans.items():
                for chunk in self._chunks(course_badge_id, first):
                    self._confirm_unseen(provider, chunk, seen)
        except Exception:
            if self.changed:
                log.warning(
                    "badges_bridge: drift check of account %s stopped after changing %s row(s), each on the "
                    "provider's own word; the rows it did not reach are unchanged",
                    self.account.pk,
                    self.changed,
                )
            raise
        log.info(
            "badges_bridge: drift check of account %s: %s badge(s) listed, %s read directly, %s row(s) changed",
            self.account.pk,
            self.listed,
            self.read_directly,
            self.changed,
        )
        return self.changed

    def _match_listed(self, batch: list[Award], course_badges: set[int], seen: SeenRows) -> None:
        """Note the rows whose badge is listed live; change those whose badge is listed as no longer live."""
        self.listed += len(batch)
        states = {award.external_id: award.state for award in batch}
        matched = (
            BadgeIssuance.objects.filter(external_id__in=list(states), state=IssuanceState.ISSUED)
            .order_by()
            .values_list("pk", "external_id", "award_number", "course_badge_id")
        )
        for row_id, external_id, award_number, course_badge_id in matched:
            state = states.get(external_id)
            # Another account's row, or another spelling matched by a case-insensitive collation.
            if state is None or course_badge_id not in course_badges:
                continue
            if state.is_live:
                seen.add(row_id)
            else:
                self.changed += mark(IssuedRow(row_id, external_id, award_number), self.account.pk, state)

    def _chunks(self, course_badge_id: int, first: int) -> Iterator[list[IssuedRow]]:
        """The course badge's issued rows from id ``first`` on, ROW_CHUNK at a time in order of id."""
        last = first - 1
        while True:
            chunk = [
                IssuedRow(*values)
                for values in BadgeIssuance.objects.filter(
                    course_badge_id=course_badge_id, state=IssuanceState.ISSUED, pk__gt=last
                )
                .exclude(external_id="")
                .order_by("pk")
                .values_list("pk", "external_id", "award_number")[:ROW_CHUNK]
            ]
            if not chunk:
                return
            yield chunk
            last = chunk[-1].id

    def _confirm_unseen(self, provider: BaseProvider, chunk: list[IssuedRow], seen: SeenRows) -> None:
        for row in chunk:
            if row.id in seen:
                continue
            self.read_directly += 1
            state = confirmed_state(provider, row.external_id)
            if not state.is_live:
                self.changed += mark(row, self.account.pk, state)


def check_account_drift(account: ProviderAccount) -> int:
    """Reconcile one account's issued rows with the provider; returns how many rows changed.

    Raises the provider's error when the listing or a direct read fails; the rows
    changed before that stay changed, since each change rests on what the provider
    said of that badge, and no row is changed for being absent from an unfinished listing.
    """
    return DriftScan(account).run()


def issued_rows(account: ProviderAccount) -> QuerySet[BadgeIssuance]:
    """The account's issued rows that name a provider badge."""
    return BadgeIssuance.objects.filter(state=IssuanceState.ISSUED, course_badge__template__account=account).exclude(
        external_id=""
    )


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def confirmed_state(provider: BaseProvider, external_id: str) -> AwardState:
    """The state of a badge the listing did not show, read directly.

    A listing read page by page while badges come and go can skip a badge that still
    exists, so absence alone never counts as deletion.
    """
    try:
        return provider.get_award(external_id).state
    except NotFoundError:
        return AwardState.DELETED


def mark(row: IssuedRow, account_id: int, provider_state: AwardState) -> int:
    """Record that the row's badge is no longer live at the provider (rejected, revoked, expired, gone).

    The change only applies while the row still names the same badge and no worker holds it;
    returns 1 when it did.
    """
    result = ledger.record_provider_badge(account_id, row.external_id, provider_state, "task:drift", issuance_id=row.id)
    return int(result.outcome == ledger.ProviderUpdate.CHANGED)
