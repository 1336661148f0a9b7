"""Manual awards: course staff award a badge to a list of learners, through the same ledger and tasks."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, ledger, manual, privacy, tombstones
from badges_bridge.data import ManualResult
from badges_bridge.exceptions import ManualAwardError
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, Origin, RevokedBy, RevokePolicy
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Manual+2026")
S = IssuanceState
R = ManualResult
ACTOR = "admin:user#1"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def badge(credly):
    return make_course_badge(
        make_template(make_account(credly), credly, "Contributor"), COURSE, revoke_policy=RevokePolicy.CRITERION_UNMET
    )


@pytest.fixture
def instructor(django_user_model):
    return django_user_model.objects.create_user(username="grace", email="Grace@Example.com", password="x")


def row_of(user, badge) -> BadgeIssuance:
    return BadgeIssuance.objects.get(user=user, course_badge=badge)


def results(report) -> list[tuple[int, str]]:
    return [(line.number, line.result) for line in report.lines]


def live(credly, badge, user) -> int:
    return len(credly.live_awards(badge.template.external_id, user.email))


# -- parsing -------------------------------------------------------------------------------------------------


def test_csv_with_header_comments_blank_lines_and_spaces():
    wanted, bad = manual.parse_lines(["username", "", "  # staff  ", "  grace  ", "ada,", '"bob"', "a@b.org"])
    assert [(number, value) for number, _text, value in wanted] == [
        (4, "grace"),
        (5, "ada"),
        (6, "bob"),
        (7, "a@b.org"),
    ]
    assert bad == []


def test_email_header_is_skipped_only_on_the_first_line():
    wanted, bad = manual.parse_lines(["Email", "email"])
    assert [value for _n, _t, value in wanted] == ["email"]  # a user may be called "email"


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        ("grace,ada", "more than one value"),
        ("grace ada", "not a valid username or e-mail address"),
        ("a@b@c.org", "not a valid e-mail address"),
        ("<script>", "not a valid username or e-mail address"),
        ("x" * 151, "not a valid username or e-mail address"),
    ],
)
def test_bad_lines(line, detail):
    wanted, bad = manual.parse_lines([line])
    assert wanted == []
    assert [(b.number, b.result, b.detail) for b in bad] == [(1, R.BAD_LINE, detail)]


def test_too_many_lines_are_refused_before_anything_is_done(badge, instructor):
    with pytest.raises(ManualAwardError, match="at most 10000 lines"):
        api.award_manually(badge.pk, ["grace"] + ["# filler"] * manual.MAX_LINES, ACTOR)
    assert not BadgeIssuance.objects.exists()


def test_an_unknown_course_badge_is_an_error():
    with pytest.raises(ManualAwardError, match="no course badge with id 999"):
        api.award_manually(999, ["grace"], ACTOR)


# -- results ---------------------------------------------------------------------------------------------------


def test_every_result_kind(credly, badge, instructor, learner, django_user_model, deliver):
    deliver(send.send_passing_status, learner, COURSE, True)  # ada already holds the badge
    django_user_model.objects.create_user(username="x1", email="shared@example.com")
    django_user_model.objects.create_user(username="x2", email="SHARED@example.com")
    lines = ["grace", "ada", "nobody", "shared@example.com", "a,b", "grace@example.com", "bad line"]
    report = deliver(api.award_manually, badge.pk, lines, ACTOR, "course author")
    assert results(report) == [
        (1, R.AWARDED),
        (2, R.ALREADY_HELD),
        (3, R.UNKNOWN_USER),
        (4, R.UNKNOWN_USER),
        (5, R.BAD_LINE),
        (6, R.DUPLICATE_LINE),
        (7, R.BAD_LINE),
    ]
    assert report.lines[3].detail == "several accounts have this e-mail address; use the username"
    assert report.lines[5].detail == "the same learner as line 1"
    assert report.failed
    assert report.summary() == (
        "1 awarded, 1 already held, 2 unknown user, 2 bad line, 1 duplicate line, 0 not allowed"
    )
    row = row_of(instructor, badge)
    assert (row.state, row.origin) == (S.ISSUED, Origin.MANUAL)
    assert report.lines[0].issuance_id == row.pk
    assert live(credly, badge, instructor) == 1


def test_an_email_address_finds_the_learner_whatever_its_case(credly, badge, instructor, deliver):
    report = deliver(api.award_manually, badge.pk, ["email", "grace@EXAMPLE.com"], ACTOR)
    assert results(report) == [(2, R.AWARDED)]
    assert not report.failed
    assert row_of(instructor, badge).state == S.ISSUED


def test_the_audit_entry_names_the_actor_and_the_reason(badge, instructor, deliver, work_queue):
    deliver(api.award_manually, badge.pk, ["grace"], ACTOR, "wrote the course")
    entry = AuditEntry.objects.get(issuance=row_of(instructor, badge))
    assert (entry.actor, entry.from_state, entry.to_state) == (ACTOR, "", S.PENDING)
    assert entry.message == "awarded manually: wrote the course"


def test_dry_run_writes_and_queues_nothing(badge, instructor, deliver, work_queue):
    report = deliver(api.award_manually, badge.pk, ["grace"], ACTOR, dry_run=True)
    assert results(report) == [(1, R.AWARDED)]
    assert report.dry_run
    assert not BadgeIssuance.objects.exists()
    assert not AuditEntry.objects.exists()
    assert work_queue.pending == []


def test_a_disabled_course_badge_is_not_allowed(badge, instructor, deliver):
    badge.enabled = False
    badge.save()
    report = deliver(api.award_manually, badge.pk, ["grace", "nobody"], ACTOR)
    assert results(report) == [(1, R.NOT_ALLOWED), (2, R.UNKNOWN_USER)]
    assert report.lines[0].detail == "the course badge is disabled"
    assert not BadgeIssuance.objects.exists()


def test_a_retired_learner_is_not_allowed(badge, instructor, deliver):
    tombstones.bury(instructor.pk)
    report = deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    assert [(line.result, line.detail) for line in report.lines] == [(R.NOT_ALLOWED, "the learner retired")]
    assert not BadgeIssuance.objects.exists()


# -- the ledger --------------------------------------------------------------------------------------------------


def test_a_later_not_met_event_keeps_a_manual_award(credly, badge, instructor, deliver):
    deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    deliver(send.send_passing_status, instructor, COURSE, False)
    row = row_of(instructor, badge)
    assert (row.state, row.origin, row.award_number) == (S.ISSUED, Origin.MANUAL, 1)
    assert live(credly, badge, instructor) == 1


def test_a_later_met_event_issues_nothing_new(credly, badge, instructor, deliver):
    deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    deliver(send.send_passing_status, instructor, COURSE, True)
    deliver(send.send_passing_status, instructor, COURSE, False)
    row = row_of(instructor, badge)
    assert (row.state, row.origin, row.award_number) == (S.ISSUED, Origin.MANUAL, 1)
    assert len(credly.requests_for("issue")) == 1


def test_a_not_met_event_while_the_manual_award_is_issuing_keeps_it(credly, badge, instructor, deliver, work_queue):
    deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    (work,) = work_queue.pending
    row = ledger.claim(work.issuance_id, "issue")
    deliver(send.send_passing_status, instructor, COURSE, False)  # arrives while the worker holds the row
    ledger.finish(row, S.ISSUED, "task", "issued", external_id="b1")
    assert (row.state, row.operation, row.origin) == (S.ISSUED, "issue", Origin.MANUAL)


def test_a_not_met_event_while_waiting_for_consent_keeps_the_manual_award(badge, instructor, deliver, settings):
    settings.BADGES_BRIDGE_REQUIRE_CONSENT = True
    deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    deliver(send.send_passing_status, instructor, COURSE, False)
    assert row_of(instructor, badge).state == S.WAITING_CONSENT


def test_an_award_earned_by_the_criterion_stays_under_the_revoke_policy(credly, badge, learner, deliver):
    deliver(send.send_passing_status, learner, COURSE, True)
    assert results(deliver(api.award_manually, badge.pk, ["ada"], ACTOR)) == [(1, R.ALREADY_HELD)]
    deliver(send.send_passing_status, learner, COURSE, False)
    row = row_of(learner, badge)
    assert (row.state, row.origin, row.revoked_by) == (S.REVOKED, Origin.CRITERIA, RevokedBy.POLICY)


def test_an_operator_still_revokes_a_manual_award(credly, badge, instructor, deliver):
    deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    row = row_of(instructor, badge)
    deliver(api.revoke_issuance, row.pk, ACTOR, "awarded by mistake")
    row.refresh_from_db()
    assert (row.state, row.revoked_by, row.revoke_reason) == (S.REVOKED, RevokedBy.OPERATOR, "awarded by mistake")
    assert live(credly, badge, instructor) == 0
    deliver(send.send_passing_status, instructor, COURSE, True)  # never re-awarded on its own
    assert row_of(instructor, badge).state == S.REVOKED
    report = deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    assert report.lines[0].result == R.NOT_ALLOWED
    assert "issue again on purpose" in report.lines[0].detail


def test_a_badge_revoked_by_the_policy_is_awarded_again_as_a_new_award(credly, badge, learner, deliver):
    deliver(send.send_passing_status, learner, COURSE, True)
    deliver(send.send_passing_status, learner, COURSE, False)
    row = row_of(learner, badge)
    assert (row.state, row.revoked_by, row.origin) == (S.REVOKED, RevokedBy.POLICY, Origin.CRITERIA)
    report = deliver(api.award_manually, badge.pk, ["ada"], ACTOR)
    assert results(report) == [(1, R.AWARDED)]
    row.refresh_from_db()
    assert (row.state, row.origin, row.award_number, row.revoked_by) == (S.ISSUED, Origin.MANUAL, 2, "")
    assert live(credly, badge, learner) == 1


def test_a_not_met_row_is_awarded(credly, badge, learner, deliver):
    deliver(send.send_passing_status, learner, COURSE, False)
    assert row_of(learner, badge).state == S.NOT_MET
    assert results(deliver(api.award_manually, badge.pk, ["ada"], ACTOR)) == [(1, R.AWARDED)]
    assert row_of(learner, badge).state == S.ISSUED


def test_a_badge_the_learner_rejected_is_not_allowed(credly, badge, learner, deliver):
    deliver(send.send_passing_status, learner, COURSE, True)
    BadgeIssuance.objects.filter(user=learner).update(state=S.REJECTED)
    report = deliver(api.award_manually, badge.pk, ["ada"], ACTOR)
    assert report.lines[0].result == R.NOT_ALLOWED
    assert report.lines[0].detail.startswith("the learner rejected this badge at the provider")
    assert 'use "issue again on purpose"' in report.lines[0].detail


@pytest.mark.parametrize(
    ("revoked_by", "detail"),
    [
        (RevokedBy.PROVIDER, "the badge was revoked at the provider"),
        (RevokedBy.LEARNER, "the learner asked for this badge to be taken back"),
    ],
)
def test_a_badge_taken_back_at_the_provider_or_by_the_learner_is_not_allowed(
    credly, badge, learner, deliver, revoked_by, detail
):
    deliver(send.send_passing_status, learner, COURSE, True)
    BadgeIssuance.objects.filter(user=learner).update(state=S.REVOKED, revoked_by=revoked_by)
    report = deliver(api.award_manually, badge.pk, ["ada"], ACTOR)
    assert report.lines[0].result == R.NOT_ALLOWED
    assert report.lines[0].detail.startswith(detail)


def test_a_revoke_in_progress_is_not_allowed(credly, badge, learner, deliver, work_queue):
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    deliver(send.send_passing_status, learner, COURSE, False)  # the revoke waits in the queue
    report = deliver(api.award_manually, badge.pk, ["ada"], ACTOR)
    assert report.lines[0].result == R.NOT_ALLOWED
    assert "revoke of this badge is in progress" in report.lines[0].detail


def test_a_consent_hold_is_respected(credly, badge, instructor, deliver, work_queue, settings):
    settings.BADGES_BRIDGE_REQUIRE_CONSENT = True
    report = deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    assert results(report) == [(1, R.AWARDED)]
    assert report.lines[0].detail == privacy.HOLD_MESSAGES[privacy.NO_CONSENT]
    row = row_of(instructor, badge)
    assert (row.state, row.origin) == (S.WAITING_CONSENT, Origin.MANUAL)
    assert work_queue.pending == []
    assert credly.requests_for("issue") == []
    assert results(deliver(api.award_manually, badge.pk, ["grace"], ACTOR)) == [(1, R.ALREADY_HELD)]
    deliver(api.set_consent, instructor.pk, True)
    work_queue.run()
    assert row_of(instructor, badge).state == S.ISSUED
    assert live(credly, badge, instructor) == 1


def test_the_same_list_twice_issues_once(credly, badge, instructor, learner, deliver):
    first = deliver(api.award_manually, badge.pk, ["grace", "ada"], ACTOR)
    second = deliver(api.award_manually, badge.pk, ["grace", "ada"], ACTOR)
    assert results(first) == [(1, R.AWARDED), (2, R.AWARDED)]
    assert results(second) == [(1, R.ALREADY_HELD), (2, R.ALREADY_HELD)]
    assert second.lines[0].detail == "the badge is issued"
    assert len(credly.requests_for("issue")) == 2
    assert live(credly, badge, instructor) == live(credly, badge, learner) == 1


def test_a_list_submitted_while_the_first_is_issuing_issues_once(credly, badge, instructor, deliver, work_queue):
    deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    (work,) = work_queue.pending
    row = ledger.claim(work.issuance_id, "issue")  # a worker holds the row
    report = deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    assert report.lines[0].result == R.ALREADY_HELD
    assert work_queue.pending == [work]
    ledger.release(row)


def test_two_racing_submissions_create_one_row(credly, badge, instructor, deliver, monkeypatch):
    """The other submission inserted the row after this one looked: the insert fails, the row is read again."""
    deliver(api.award_manually, badge.pk, ["grace"], "admin:user#2")  # the other submission, committed
    real_row = ledger._learner_row
    missed = []

    def stale_read(user_id, course_badge_id):
        if not missed:
            missed.append(user_id)
            return None  # read before the other submission's commit
        return real_row(user_id, course_badge_id)

    monkeypatch.setattr(ledger, "_learner_row", stale_read)
    report = deliver(api.award_manually, badge.pk, ["grace"], ACTOR)
    assert missed
    assert results(report) == [(1, R.ALREADY_HELD)]
    assert BadgeIssuance.objects.filter(user=instructor).count() == 1
    assert [entry.actor for entry in AuditEntry.objects.filter(from_state="")] == ["admin:user#2"]
    assert len(credly.requests_for("issue")) == 1


def test_no_personal_data_in_logs(credly, badge, instructor, deliver, caplog):
    caplog.set_level(logging.DEBUG)
    deliver(api.award_manually, badge.pk, ["grace", "Grace@Example.com", "nobody", "x@y.org", "a,b"], ACTOR)
    text = "\n".join(record.getMessage() for record in caplog.records).lower()
    assert "manual award of course badge" in text
    for secret in ("grace", "example.com", "nobody", "x@y.org"):
        assert secret not in text


# -- the command ---------------------------------------------------------------------------------------------------


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="staff", email="staff@example.com", is_staff=True)


def test_command_awards_from_a_file_and_prints_each_line(credly, badge, instructor, staff, tmp_path, capsys):
    path = tmp_path / "users.csv"
    path.write_text("\ufeffusername\ngrace\n# comment\n\ngrace@example.com\n", encoding="utf-8")
    call_command("badges_bridge_award", str(COURSE), "--file", str(path), "--actor", "staff", "--reason", "author")
    out = capsys.readouterr().out
    assert "line 2: grace: awarded" in out
    assert "line 5: grace@example.com: duplicate_line (the same learner as line 2)" in out
    assert "1 awarded, 0 already held, 0 unknown user, 0 bad line, 1 duplicate line, 0 not allowed" in out
    entry = AuditEntry.objects.get(issuance=row_of(instructor, badge), from_state="")
    assert (entry.actor, entry.message) == (f"admin:user#{staff.pk}", "awarded manually: author")


def test_command_exits_non_zero_when_a_line_failed(badge, instructor, staff, capsys, work_queue):
    with pytest.raises(CommandError, match="some lines failed"):
        call_command("badges_bridge_award", str(COURSE), "--users", "grace,nobody", "--actor", "staff")
    out = capsys.readouterr().out
    assert "line 1: grace: awarded" in out
    assert "line 2: nobody: unknown_user (no such user)" in out


def test_command_dry_run(badge, instructor, staff, capsys, work_queue):
    call_command(
        "badges_bridge_award", str(COURSE), "--badge-id", str(badge.pk), "--users", "grace", "--actor", "staff",
        "--dry-run",
    )  # fmt: skip
    assert "Dry run, nothing awarded: 1 awarded" in capsys.readouterr().out
    assert not BadgeIssuance.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--users", "grace", "--actor", "nobody"], "No user with the username 'nobody'"),
        (["--users", "grace", "--actor", "staff", "--badge-id", "999"], "No course badge with id 999"),
        (["--file", "/nonexistent/users.csv", "--actor", "staff"], "Cannot read"),
    ],
)
def test_command_errors(badge, staff, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("badges_bridge_award", str(COURSE), *args)


def test_command_needs_a_badge_id_when_the_course_has_several(credly, badge, staff):
    make_course_badge(make_template(badge.template.account, credly, "Helper"), COURSE)
    with pytest.raises(CommandError, match="several course badges"):
        call_command("badges_bridge_award", str(COURSE), "--users", "grace", "--actor", "staff")
    with pytest.raises(CommandError, match="has no course badge"):
        call_command("badges_bridge_award", "course-v1:Org+None+2026", "--users", "grace", "--actor", "staff")


# -- the admin page ------------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    client.user = root
    return client


def award_url(badge) -> str:
    return reverse("admin:badges_bridge_coursebadge_award", args=[badge.pk])


def test_admin_page_awards_pasted_learners_and_shows_each_result(credly, badge, instructor, admin_client, deliver):
    assert admin_client.get(award_url(badge)).status_code == 200
    response = deliver(admin_client.post, award_url(badge), {"users": "grace\nnobody\n", "reason": "course author"})
    assert response.status_code == 200
    report = response.context["report"]
    assert results(report) == [(1, R.AWARDED), (2, R.UNKNOWN_USER)]
    assert "no such user" in response.content.decode()
    entry = AuditEntry.objects.get(issuance=row_of(instructor, badge), from_state="")
    assert (entry.actor, entry.message) == (f"admin:user#{admin_client.user.pk}", "awarded manually: course author")
    assert row_of(instructor, badge).state == S.ISSUED


def test_the_ledger_shows_and_filters_the_origin(badge, instructor, admin_client, work_queue):
    admin_client.post(award_url(badge), {"users": "grace"})
    row = row_of(instructor, badge)
    page = admin_client.get(reverse("admin:badges_bridge_badgeissuance_change", args=[row.pk])).content.decode()
    assert "Awarded manually by course staff or an operator" in page
    changelist = reverse("admin:badges_bridge_badgeissuance_changelist")
    assert admin_client.get(changelist, {"origin__exact": "manual"}).context["cl"].result_count == 1
    assert admin_client.get(changelist, {"origin__exact": "criteria"}).context["cl"].result_count == 0


def test_accredible_issues_a_manual_award(accredible, instructor, deliver):
    template = make_template(make_account(accredible), accredible, "Contributor")
    badge = make_course_badge(template, COURSE)
    assert results(deliver(api.award_manually, badge.pk, ["grace"], ACTOR)) == [(1, R.AWARDED)]
    assert row_of(instructor, badge).state == S.ISSUED
    assert len(accredible.live_awards(template.external_id, instructor.email)) == 1


def test_admin_page_reads_an_uploaded_csv(badge, instructor, admin_client, work_queue):
    upload = SimpleUploadedFile("users.csv", b"\xef\xbb\xbfemail\ngrace@example.com\n", content_type="text/csv")
    response = admin_client.post(award_url(badge), {"file": upload})
    assert results(response.context["report"]) == [(2, R.AWARDED)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Paste learners or choose a file."),
        ({"file": SimpleUploadedFile("users.xlsx", b"\xff\xfe\x00PK\x03")}, "not UTF-8 text"),
        ({"users": "grace\n" + "#\n" * manual.MAX_LINES}, "at most 10000 lines"),
    ],
)
def test_admin_page_bad_input_gives_a_message_not_an_error(badge, instructor, admin_client, data, message):
    response = admin_client.post(award_url(badge), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not BadgeIssuance.objects.exists()


def test_admin_action_opens_the_page_of_one_badge(badge, admin_client):
    changelist = reverse("admin:badges_bridge_coursebadge_changelist")
    response = admin_client.post(changelist, {"action": "award_manually", "_selected_action": [badge.pk]})
    assert response.status_code == 302
    assert response.url == award_url(badge)


def test_view_only_staff_get_403(badge, client, django_user_model):
    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_badgeissuance", "view_coursebadge", "change_coursebadge"])
    )
    client.force_login(user)
    assert client.get(award_url(badge)).status_code == 403
    assert client.post(award_url(badge), {"users": "viewer"}).status_code == 403
    changelist = client.get(reverse("admin:badges_bridge_coursebadge_changelist"))
    assert "award_manually" not in changelist.content.decode()
    assert not BadgeIssuance.objects.exists()


def test_admin_page_of_an_unknown_badge_is_404(admin_client):
    assert admin_client.get(reverse("admin:badges_bridge_coursebadge_award", args=[999])).status_code == 404


def test_admin_page_needs_the_csrf_token(badge, instructor, django_user_model):
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    assert client.post(award_url(badge), {"users": "grace"}).status_code == 403
    assert not BadgeIssuance.objects.exists()
