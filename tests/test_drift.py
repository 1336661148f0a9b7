"""The drift check streams the provider listing and the ledger: small pages, batches and chunks, several
templates and accounts, badges deleted during the scan, and failures midway."""

import pytest
from django.utils import timezone

from badges_bridge import api, drift
from badges_bridge.models import (
    AuditEntry,
    AwardStatus,
    BadgeIssuance,
    BadgeTemplate,
    IssuanceState,
    IssuedBadge,
    RevokedBy,
)
from badges_bridge.providers.base import AwardState
from badges_bridge.providers.credly import CredlyProvider
from badges_bridge.testing.setup import make_account, make_course_badge

pytestmark = pytest.mark.django_db
S = IssuanceState
#: A state each fake can give a badge that is listed but no longer held.
NOT_LIVE = {"credly": (AwardState.REVOKED, AwardState.REJECTED), "accredible": (AwardState.EXPIRED,) * 2}


@pytest.fixture(params=["credly", "accredible"])
def harness(request):
    """Each fake provider in turn, serving two badges a page."""
    fake = request.getfixturevalue(request.param)
    fake.set_page_size(2)
    return fake


@pytest.fixture
def small_steps(monkeypatch):
    """Match the listing three badges at a time and read the ledger two rows at a time."""
    monkeypatch.setattr(drift, "LISTING_BATCH", 3)
    monkeypatch.setattr(drift, "ROW_CHUNK", 2)


@pytest.fixture
def users(django_user_model):
    return [django_user_model.objects.create_user(username=f"u{i}", email=f"u{i}@example.com") for i in range(5)]


def issued_rows(harness, users, *, account="main", templates=3, per_template=4):
    """An account with ``templates`` course badges, each issued to ``per_template`` learners, and its rows."""
    record = make_account(harness, account=account)
    rows = []
    for number in range(templates):
        name = f"{account} badge {number}"
        template = BadgeTemplate.objects.create(
            account=record, external_id=harness.seed_template(name, account=account), name=name
        )
        course_badge = make_course_badge(template, f"course-v1:Org+{account}{number}+2026")
        for user in users[:per_template]:
            rows.append(issued(course_badge, user, harness.seed_award(template.external_id, user.email, account)))
    return record, rows


def issued(course_badge, user, external_id, state=S.ISSUED):
    row = BadgeIssuance.objects.create(
        user=user, course_badge=course_badge, state=state, external_id=external_id, issued_at=timezone.now()
    )
    IssuedBadge.objects.create(issuance=row, external_id=external_id, number=1)
    return row


def states(rows):
    return [BadgeIssuance.objects.get(pk=row.pk).state for row in rows]


def test_only_the_rows_whose_badge_is_no_longer_live_change(harness, users, small_steps, request):
    account, rows = issued_rows(harness, users)
    first, second = NOT_LIVE[request.node.callspec.params["harness"]]
    harness.set_award_state(rows[0].external_id, AwardState.DELETED)
    harness.set_award_state(rows[5].external_id, AwardState.DELETED)
    harness.set_award_state(rows[2].external_id, first)
    harness.set_award_state(rows[9].external_id, second)
    waiting = issued(rows[0].course_badge, users[4], rows[0].external_id, state=S.PENDING)  # not issued: ignored

    assert api.check_drift() == {account.name: 4}

    expected = [S.ISSUED] * len(rows)
    expected[0] = expected[5] = expected[2] = S.REVOKED
    expected[9] = S.REJECTED if second == AwardState.REJECTED else S.REVOKED
    assert states(rows) == expected
    assert states([waiting]) == [S.PENDING]
    changed = BadgeIssuance.objects.filter(pk__in=[rows[i].pk for i in (0, 5, 2, 9)])
    assert {(row.pk, row.provider_state) for row in changed} == {
        (rows[0].pk, "deleted"),
        (rows[5].pk, "deleted"),
        (rows[2].pk, first.value),
        (rows[9].pk, second.value),
    }
    assert {row.revoked_by for row in changed if row.state == S.REVOKED} == {RevokedBy.PROVIDER}
    assert set(IssuedBadge.objects.filter(status=AwardStatus.GONE).values_list("issuance", flat=True)) == {
        row.pk for row in changed
    }
    assert AuditEntry.objects.filter(actor="task:drift").count() == 4
    # Only the two badges the listing did not show were read one by one.
    assert len(harness.requests_for("get")) == 2


def test_every_page_of_every_template_is_read_before_a_badge_is_called_missing(harness, users, small_steps):
    account, rows = issued_rows(harness, users, templates=4, per_template=5)
    assert api.check_drift() == {account.name: 0}
    assert set(states(rows)) == {S.ISSUED}
    assert harness.requests_for("get") == []  # all 20 badges were found in the listing


def test_a_badge_deleted_during_the_scan_is_read_before_anything_changes(harness, users, small_steps):
    account, rows = issued_rows(harness, users, templates=1, per_template=5)
    listed = [str(award["id"]) for award in harness.all_awards()]
    deleted = listed[0]
    # Deleted while the check reads page 2: the pages shift by one and the first badge of page 2 is skipped.
    harness.inject("find", "hook", skip=1, action=lambda request: harness.set_award_state(deleted, AwardState.DELETED))

    assert api.check_drift() == {account.name: 0}  # listed before it went; the skipped badge is read, still live
    assert set(states(rows)) == {S.ISSUED}
    assert len(harness.requests_for("get")) == 1

    assert api.check_drift() == {account.name: 1}  # the next check misses it, reads it, and only then changes it
    assert BadgeIssuance.objects.get(external_id=deleted).state == S.REVOKED
    assert BadgeIssuance.objects.filter(state=S.ISSUED).count() == 4


def test_a_listing_failing_midway_changes_only_what_the_provider_said(harness, users, small_steps, request):
    account, rows = issued_rows(harness, users, templates=2, per_template=4)
    other, other_rows = issued_rows(harness, users, account="other", templates=1, per_template=2)
    listed = [str(award["id"]) for award in harness.all_awards()]
    said, _ = NOT_LIVE[request.node.callspec.params["harness"]]
    harness.set_award_state(listed[1], said)  # on page 1: the provider says it is no longer held
    harness.set_award_state(listed[6], AwardState.DELETED)  # would only be noticed after the whole listing
    harness.set_award_state(other_rows[1].external_id, AwardState.DELETED, account="other")
    harness.inject("find", "status", status=500, skip=2)  # the third page of the first account fails

    assert api.check_drift() == {account.name: -1, other.name: 1}

    by_id = {row.external_id: row.state for row in BadgeIssuance.objects.filter(pk__in=[r.pk for r in rows])}
    assert by_id.pop(listed[1]) == (S.REJECTED if said == AwardState.REJECTED else S.REVOKED)
    assert set(by_id.values()) == {S.ISSUED}  # the deleted badge's row included: its absence was never judged
    assert states(other_rows) == [S.ISSUED, S.REVOKED]  # the other account was still checked
    read = [entry.path for entry in harness.requests_for("get")]
    assert len(read) == 1  # only the other account's missing badge was read directly
    assert read[0].endswith(other_rows[1].external_id)


def test_a_direct_read_failing_midway_keeps_the_rows_already_confirmed(harness, users, small_steps):
    account, rows = issued_rows(harness, users, templates=1, per_template=4)
    harness.set_award_state(rows[1].external_id, AwardState.DELETED)
    harness.set_award_state(rows[3].external_id, AwardState.DELETED)
    harness.inject("get", "status", status=503, skip=1)

    assert api.check_drift() == {account.name: -1}
    assert states(rows) == [S.ISSUED, S.REVOKED, S.ISSUED, S.ISSUED]
    assert api.check_drift() == {account.name: 1}  # the next check finishes the job
    assert states(rows) == [S.ISSUED, S.REVOKED, S.ISSUED, S.REVOKED]


def test_a_row_re_awarded_meanwhile_is_left_alone(credly, users, monkeypatch):
    account, rows = issued_rows(credly, users, templates=1, per_template=2)
    credly.set_award_state(rows[0].external_id, AwardState.DELETED)
    read = drift.confirmed_state

    def re_awarded_while_read(provider, external_id):
        # The learner lost the badge and earned it again while the check was reading it: a new award.
        BadgeIssuance.objects.filter(pk=rows[0].pk).update(state=S.PENDING, external_id="", award_number=2)
        return read(provider, external_id)

    monkeypatch.setattr(drift, "confirmed_state", re_awarded_while_read)

    assert api.check_drift() == {account.name: 0}
    row = BadgeIssuance.objects.get(pk=rows[0].pk)
    assert (row.state, row.award_number, row.revoked_by) == (S.PENDING, 2, "")
    assert not AuditEntry.objects.filter(actor="task:drift").exists()
    assert IssuedBadge.objects.get(issuance=row).status == AwardStatus.LIVE


def test_rows_issued_after_the_check_started_are_read_directly(credly, users, small_steps, monkeypatch):
    account, rows = issued_rows(credly, users, templates=1, per_template=2)
    course_badge = rows[0].course_badge
    late = []
    listing = CredlyProvider.iter_awards

    def issue_while_listing(provider, template_ids):
        for position, award in enumerate(listing(provider, template_ids)):
            if position == 1:  # two rows become issued while the listing is read
                template = course_badge.template.external_id
                late.append(issued(course_badge, users[2], credly.seed_award(template, users[2].email)))
                late.append(issued(course_badge, users[3], "a-badge-the-provider-never-had"))
            yield award

    monkeypatch.setattr(CredlyProvider, "iter_awards", issue_while_listing)

    assert api.check_drift() == {account.name: 1}
    assert states(rows + late) == [S.ISSUED, S.ISSUED, S.ISSUED, S.REVOKED]
    assert len(credly.requests_for("get")) == 2


def test_a_row_of_another_account_naming_the_same_badge_id_is_not_touched(credly, users):
    account, rows = issued_rows(credly, users, templates=1, per_template=1)
    other = make_account(credly, name="other", account="other")
    external_id = credly.seed_template("Theirs", account="other")
    template = BadgeTemplate.objects.create(account=other, external_id=external_id, name="Theirs")
    theirs = issued(make_course_badge(template, "course-v1:Org+Theirs+2026"), users[1], rows[0].external_id)
    credly.set_award_state(rows[0].external_id, AwardState.REVOKED)

    assert api.check_drift([account.pk]) == {account.name: 1}
    assert states([rows[0], theirs]) == [S.REVOKED, S.ISSUED]


def test_an_account_without_issued_rows_costs_no_request(harness, users):
    account, rows = issued_rows(harness, users, templates=1, per_template=2)
    BadgeIssuance.objects.filter(pk__in=[row.pk for row in rows]).update(state=S.REVOKED)
    assert api.check_drift() == {account.name: 0}
    assert harness.server.journal == []


def test_seen_rows_keep_one_bit_per_row_id_in_their_range():
    seen = drift.SeenRows(100, 117)
    assert len(seen.bits) == 3
    for row_id in (100, 107, 108, 117, 99, 118):
        seen.add(row_id)
    assert [row_id for row_id in range(95, 125) if row_id in seen] == [100, 107, 108, 117]
    empty = drift.SeenRows(1, 0)
    assert 5 not in empty
    assert len(empty.bits) == 0


def test_batches_are_read_lazily():
    consumed = []

    def numbers():
        for number in range(7):
            consumed.append(number)
            yield number

    batches = drift.batches(numbers(), 3)
    assert next(batches) == [0, 1, 2]
    assert consumed == [0, 1, 2]
    assert list(batches) == [[3, 4, 5], [6]]
