"""Backfill feeders racing on MariaDB: each waiting row is queued by exactly one of them.

Several feeders run at once, each in its own thread and database connection, as on
several workers; every row they mark must be marked by one only, and all of them must be.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from badges_bridge import ledger
from badges_bridge.models import BadgeIssuance, IssuanceState, Lane
from tests.integration.helpers import MYSQL_MODE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not MYSQL_MODE, reason="only with BADGES_BRIDGE_TEST_DB=mysql"),
]

FEEDERS = 4
ROWS = 120


def test_racing_feeders_never_queue_a_row_twice(world):
    rows = [
        BadgeIssuance(
            user=world.learner(f"learner{n}"),
            course_badge=world.badge,
            state=IssuanceState.PENDING,
            lane=Lane.BACKFILL,
        )
        for n in range(ROWS)
    ]
    BadgeIssuance.objects.bulk_create(rows)
    account_id = world.badge.template.account_id
    start = threading.Barrier(FEEDERS)

    def feeder() -> list[int]:
        marked: list[int] = []
        try:
            start.wait(10)
            while True:
                batch = ledger.feed_backfill(account_id, 7)
                if not batch:
                    return marked
                marked += batch
        finally:
            connection.close()

    with ThreadPoolExecutor(FEEDERS) as pool:
        results = [future.result(timeout=60) for future in [pool.submit(feeder) for _ in range(FEEDERS)]]
    marked = [pk for result in results for pk in result]
    assert len(marked) == len(set(marked)) == ROWS
    assert not BadgeIssuance.objects.filter(ledger.backfill_waiting()).exists()
