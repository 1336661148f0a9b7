"""Opt-out holds issuance back through the whole chain, and a claim by the worker honours it (MariaDB, real worker).

The opt-out is the learner's choice stored in the database, so the worker process sees it
as the test process does (BADGES_BRIDGE_REQUIRE_CONSENT, a setting, would only be seen by
this process).
"""

from __future__ import annotations

import pytest

from badges_bridge import api, privacy, tasks
from badges_bridge.ledger import Work
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, Operation

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

S = IssuanceState


def test_an_opted_out_learner_gets_the_badge_only_after_opting_back_in(world, events, drain):
    ada = world.learner("ada")
    api.set_opt_out(ada.pk, True)
    events.passing(ada, world.course_key)
    drain()
    assert world.row(ada).state == S.WAITING_CONSENT
    assert world.harness.requests_for("issue") == []

    api.set_opt_out(ada.pk, False)  # queues the waiting badge after commit
    drain()
    assert world.row(ada).state == S.ISSUED
    world.assert_one_live_badge(ada)


def test_the_worker_holds_a_queued_row_of_a_learner_who_opted_out_meanwhile(world, drain):
    ada = world.learner("ada")
    row = BadgeIssuance.objects.create(user=ada, course_badge=world.badge, state=S.PENDING)
    privacy.record_opt_out(ada.pk, True)  # recorded after the task was queued: no hold ran
    tasks.enqueue(Work(row.pk, Operation.ISSUE))
    drain()
    row.refresh_from_db()
    assert (row.state, row.attempts) == (S.WAITING_CONSENT, 0)
    assert AuditEntry.objects.filter(issuance=row, to_state=S.WAITING_CONSENT, actor="task").exists()
    assert world.harness.requests_for("issue") == []
    assert world.harness.requests_for("find") == []
