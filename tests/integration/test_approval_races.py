"""Staff reviewing the same awards at once, on MariaDB: each row is approved or declined once, by one of them.

Each reviewer runs in its own thread and database connection. The first keeps its transaction (and
its row locks) open until the second has started and is waiting for them.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from badges_bridge import ledger
from badges_bridge.models import BadgeIssuance, IssuanceState
from tests.integration.helpers import MYSQL_MODE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not MYSQL_MODE, reason="only with BADGES_BRIDGE_TEST_DB=mysql"),
]
S = IssuanceState


@pytest.fixture
def waiting(world):
    world.badge.requires_approval = True
    world.badge.save()
    return [
        BadgeIssuance.objects.create(user=world.learner(name), course_badge=world.badge, state=S.AWAITING_APPROVAL).pk
        for name in ("ada", "bob", "cyd")
    ]


def _own_connection(func):
    def run():
        try:
            return func()
        finally:
            connection.close()

    return run


def _race(world, waiting, first_reason: str, second_reason: str):
    """The first reviewer locks the rows and waits; the second starts, blocks on the locks, then goes on."""
    first_done, release = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            result = ledger.review(world.badge.pk, waiting, "staff:1", None, decline_reason=first_reason)
            first_done.set()
            assert release.wait(30)
        return result

    def second():
        assert first_done.wait(30)
        return ledger.review(world.badge.pk, list(reversed(waiting)), "staff:2", None, decline_reason=second_reason)

    with ThreadPoolExecutor(max_workers=2) as pool:
        one = pool.submit(_own_connection(first))
        two = pool.submit(_own_connection(second))
        assert first_done.wait(30)
        with pytest.raises(TimeoutError):
            two.result(timeout=1)  # the second reviewer waits for the first one's locks
        release.set()
        return one.result(timeout=30), two.result(timeout=30)


def test_two_staff_approving_the_same_rows_approve_each_once(world, waiting):
    first, second = _race(world, waiting, "", "")
    assert sorted(first.done) == sorted(waiting)
    assert sorted(work.issuance_id for work in first.work) == sorted(waiting)  # one issue task per row
    assert second.done == []
    assert second.work == []
    assert {why for _pk, why in second.skipped} == {"already approved by course staff (it is pending)"}
    assert set(BadgeIssuance.objects.values_list("state", flat=True)) == {S.PENDING}


def test_an_approval_racing_a_decline_loses_to_it_with_a_reason(world, waiting):
    first, second = _race(world, waiting, "not eligible", "")
    assert sorted(first.done) == sorted(waiting)
    assert second.done == []
    assert {why for _pk, why in second.skipped} == {"already declined by course staff"}
    assert set(BadgeIssuance.objects.values_list("state", "review_note")) == {(S.DECLINED, "not eligible")}
