"""Row locks on MariaDB: a claim locks its ledger row only.

Claims of rows of one account must not wait for each other, and a claim and a
template sync must not wait for (or deadlock with) each other. Each contender
runs in its own thread and database connection, with a short lock wait timeout:
a claim that waited for a lock would fail with MariaDB's error 1205.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection, transaction

from badges_bridge import accounts, issuing, ledger
from badges_bridge.models import BadgeIssuance, BadgeTemplate, IssuanceState, Operation
from tests.integration.helpers import MYSQL_MODE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not MYSQL_MODE, reason="only with BADGES_BRIDGE_TEST_DB=mysql"),
]

#: Seconds a statement may wait for a row lock before MariaDB gives up (error 1205).
LOCK_WAIT_SECONDS = 2


def _in_own_connection(func: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECONDS}")
            return func()
        finally:
            connection.close()

    return run


class Holder:
    """Runs ``func`` in a transaction on another thread and keeps its locks until ``release()``."""

    def __init__(self, pool: ThreadPoolExecutor, func: Callable[[], Any]):
        self._held = threading.Event()
        self._done = threading.Event()

        def hold() -> Any:
            with transaction.atomic():
                result = func()
                self._held.set()
                self._done.wait(30)
            return result

        self.future = pool.submit(_in_own_connection(hold))
        assert self._held.wait(10), "the first transaction did not start"

    def release(self) -> Any:
        self._done.set()
        return self.future.result(timeout=30)


def timed(pool: ThreadPoolExecutor, func: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``func`` on another connection; (result, seconds). Lock waits surface as OperationalError."""
    start = time.monotonic()
    result = pool.submit(_in_own_connection(func)).result(timeout=30)
    return result, time.monotonic() - start


@pytest.fixture
def rows(world):
    return [
        BadgeIssuance.objects.create(user=world.learner(name), course_badge=world.badge, state=IssuanceState.PENDING)
        for name in ("ada", "bob")
    ]


@pytest.fixture
def pool():
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def test_claims_of_one_account_do_not_wait_for_each_other(rows, pool):
    first, second = rows
    holder = Holder(pool, lambda: ledger.claim(first.pk, Operation.ISSUE))
    try:
        claimed, seconds = timed(pool, lambda: ledger.claim(second.pk, Operation.ISSUE))
    finally:
        assert holder.release() is not None
    assert claimed is not None
    assert seconds < LOCK_WAIT_SECONDS


def test_a_template_sync_and_a_claim_do_not_wait_for_each_other(world, rows, pool):
    account = world.badge.template.account
    holder = Holder(pool, lambda: list(BadgeTemplate.objects.select_for_update().filter(account=account)))
    try:
        claimed, seconds = timed(pool, lambda: ledger.claim(rows[0].pk, Operation.ISSUE))
    finally:
        holder.release()
    assert claimed is not None
    assert seconds < LOCK_WAIT_SECONDS

    holder = Holder(pool, lambda: ledger.claim(rows[1].pk, Operation.ISSUE))
    try:
        synced, seconds = timed(pool, lambda: accounts.sync_templates(account))
    finally:
        holder.release()
    assert synced.missing == 0
    assert seconds < LOCK_WAIT_SECONDS


def test_two_workers_batching_one_account_never_carry_the_same_row(world, pool, django_user_model):
    if world.harness.kind != "accredible":
        pytest.skip("only providers with a bulk create batch rows")
    rows = [
        BadgeIssuance.objects.create(
            user=world.learner(f"learner{number}"), course_badge=world.badge, state=IssuanceState.PENDING
        )
        for number in range(40)
    ]
    # Two workers consume the tasks of all the rows, as from one queue: each may carry the other's rows.
    summaries = [
        outcome.summary for outcome in pool.map(_in_own_connection_call(issuing.process_issue), rows_ids(rows))
    ]

    assert any(summary.startswith("bulk create") for summary in summaries), summaries
    carried = [len(entry.json()["credentials"]) for entry in world.harness.requests_for("bulk_issue")]
    singles = len(world.harness.requests_for("issue"))
    assert sum(carried) + singles == len(rows) == BadgeIssuance.objects.filter(state=IssuanceState.ISSUED).count()
    assert world.harness.duplicates_created() == 0
    for row in rows:
        world.assert_one_live_badge(row.user)


def rows_ids(rows: list[BadgeIssuance]) -> list[int]:
    return [row.pk for row in rows]


def _in_own_connection_call(func: Callable[[int], Any]) -> Callable[[int], Any]:
    def run(argument: int) -> Any:
        return _in_own_connection(lambda: func(argument))()

    return run
