"""The fakes' opt-in listing cache, used by benchmarks over large stores."""

import pytest
from django.utils import timezone

from badges_bridge.providers import get_provider
from badges_bridge.providers.base import IssueRequest, Recipient


@pytest.mark.parametrize("kind", ["credly", "accredible"])
def test_cached_listings_page_through_everything_and_are_forgotten_on_a_change(kind, request):
    harness = request.getfixturevalue(kind)
    template = harness.seed_template("Listed")
    seeded = [harness.seed_award(template, f"learner{number}@example.com") for number in range(5)]
    harness.set_page_size(2)
    harness.server.cache_listings()
    provider = get_provider(kind, harness.account_config())

    assert [award.external_id for award in provider.iter_awards([template])] == seeded
    assert len(harness.server.listings) == 1  # three pages, one query computed once

    recipient = Recipient(email="new@example.com", first_name="New", last_name="Learner", earner_id="openedx-user-9")
    issued = provider.issue(IssueRequest(template_id=template, recipient=recipient, issued_at=timezone.now()))
    assert harness.server.listings == {}  # a request that changes something empties the cache
    assert [award.external_id for award in provider.iter_awards([template])] == [*seeded, issued.external_id]

    harness.reset()
    assert harness.server.listings is None  # a reset turns caching off
