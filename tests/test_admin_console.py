"""The operator's console: what the admin says is healthy, broken and to be done; its actions tell the truth."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, tasks
from badges_bridge.models import (
    AuditEntry,
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    IssuanceState,
    MaintenanceRun,
    Operation,
    ProviderAccount,
)
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.forms import new_account_form

pytestmark = pytest.mark.django_db
COURSE = CourseKey.from_string("course-v1:Org+Console+2026")
LEDGER = "admin:badges_bridge_badgeissuance_changelist"


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def badge(credly):
    return make_course_badge(make_template(make_account(credly, name="Credly main"), credly), COURSE)


def shown(response) -> list[str]:
    """The messages the admin showed after a request."""
    return [str(message) for message in get_messages(response.wsgi_request)]


def dead_row(user, badge, *, error="x", cause="unexpected", operation=Operation.ISSUE) -> BadgeIssuance:
    return BadgeIssuance.objects.create(
        user=user,
        course_badge=badge,
        state=IssuanceState.DEAD,
        operation=operation,
        last_error=error,
        error_cause=cause,
        qualified_at=timezone.now(),
    )


def _badge_form(template, **changes) -> dict:
    data = {
        "course_key": str(COURSE),
        "template": template.pk,
        "criterion": "passed",
        "revoke_policy": "never",
        "enabled": "on",
    }
    return {**data, **changes}


# -- forms that never 500 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("DemoX Stats 2026", "A course key looks like 'course-v1:DemoX+Stats+2026'"),
        (
            "https://lms.example.com/courses/course-v1:DemoX+Stats+2026/about",
            "it looks like a course URL. Enter only its course key, 'course-v1:DemoX+Stats+2026'",
        ),
        ("nonsense", "A course key looks like 'course-v1:DemoX+Stats+2026'"),
    ],
)
def test_a_malformed_course_key_is_explained_and_the_form_kept(staff_client, credly, typed, expected):
    template = make_template(make_account(credly), credly)
    response = staff_client.post(
        reverse("admin:badges_bridge_coursebadge_add"), _badge_form(template, course_key=typed, revoke_policy="x")
    )

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["course_key"]
    assert expected in error
    assert response.context["adminform"].form["course_key"].value() == typed  # what was typed is kept
    assert not CourseBadge.objects.exists()


def test_a_course_key_with_spaces_around_it_is_accepted(staff_client, credly):
    template = make_template(make_account(credly), credly)
    response = staff_client.post(
        reverse("admin:badges_bridge_coursebadge_add"), _badge_form(template, course_key=f"  {COURSE}  ")
    )
    assert response.status_code == 302
    assert CourseBadge.objects.get().course_key == COURSE


def test_a_malformed_course_in_the_ledger_filter_is_explained(staff_client, badge, learner):
    dead_row(learner, badge)
    url = reverse(LEDGER)

    response = staff_client.get(url, {"course": "DemoX Stats 2026"})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 0
    assert any("The course filter was not applied" in message for message in shown(response))
    assert staff_client.get(url, {"course": str(COURSE)}).context["cl"].result_count == 1


def test_a_threshold_of_one_or_less_must_be_confirmed(staff_client, credly):
    template = make_template(make_account(credly), credly)
    url = reverse("admin:badges_bridge_coursebadge_add")
    form = _badge_form(template, criterion="grade_at_least", grade_threshold="0.8")

    response = staff_client.post(url, form)

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["grade_threshold"]
    assert "0.8 means 0.8 percent, not 80 percent" in error
    assert "Enter 80 for 80 %" in error
    assert not CourseBadge.objects.exists()
    assert staff_client.post(url, {**form, "confirm_small_threshold": "on"}).status_code == 302
    assert CourseBadge.objects.get().grade_threshold == Decimal("0.8")


def test_a_percent_threshold_needs_no_confirmation_and_the_label_says_percent(staff_client, credly):
    template = make_template(make_account(credly), credly)
    url = reverse("admin:badges_bridge_coursebadge_add")
    page = staff_client.get(url).content.decode()
    assert "Grade threshold (percent)" in page
    assert staff_client.post(url, _badge_form(template, criterion="grade_at_least", grade_threshold="80")).status_code
    assert CourseBadge.objects.get().grade_threshold == 80


def test_the_parameters_of_another_criterion_are_dropped(staff_client, credly):
    template = make_template(make_account(credly), credly)
    response = staff_client.post(
        reverse("admin:badges_bridge_coursebadge_add"),
        _badge_form(template, criterion="passed", grade_threshold="80", certificate_modes="verified"),
    )
    assert response.status_code == 302
    badge = CourseBadge.objects.get()
    assert (badge.grade_threshold, badge.certificate_modes) == (None, "")


def test_the_course_badge_form_explains_the_revoke_policy_and_shows_criterion_fields_by_script(staff_client):
    page = staff_client.get(reverse("admin:badges_bridge_coursebadge_add")).content.decode()
    assert "Never: a badge once issued stays" in page
    assert "badges_bridge/admin.js" in page
    assert "field-confirm_small_threshold" in page


# -- actions that tell the truth -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_retry_reports_each_row_and_leaves_a_row_whose_cause_is_still_there(
    staff_client, badge, learner, django_user_model
):
    nobody = django_user_model.objects.create_user(username="nomail", email="")
    blocked = dead_row(nobody, badge, error="The learner has no e-mail address", cause="no_email")
    ready = dead_row(learner, badge, error="gave up after 8 attempts: Credly failed", cause="unavailable")
    entries = blocked.audit_entries.count()

    response = staff_client.post(
        reverse(LEDGER),
        {"action": "retry_now", "index": 0, "_selected_action": [blocked.pk, ready.pk], "state": "dead"},
        follow=True,
    )

    messages = shown(response)
    assert messages[0] == "Retry now on 2 row(s): 1 not retried (cause still there), 1 done."
    assert "-1" not in " ".join(messages)
    assert any(
        message.startswith(f"#{blocked.pk} nomail in {COURSE}: not retried, the cause is still there: The learner")
        and message.endswith("To try anyway, use 'Force retry'.")
        for message in messages
    )
    assert any(message.startswith(f"#{ready.pk} ada in {COURSE}: issued: issued") for message in messages)
    blocked.refresh_from_db()
    ready.refresh_from_db()
    assert (blocked.state, blocked.audit_entries.count()) == (IssuanceState.DEAD, entries)
    assert ready.state == IssuanceState.ISSUED


@pytest.mark.django_db(transaction=True)
def test_force_retry_tries_anyway_and_says_it_died_again(staff_client, badge, django_user_model):
    nobody = django_user_model.objects.create_user(username="nomail", email="")
    row = dead_row(nobody, badge, error="The learner has no e-mail address", cause="no_email")

    response = staff_client.post(
        reverse(LEDGER), {"action": "force_retry", "index": 0, "_selected_action": [row.pk]}, follow=True
    )

    messages = shown(response)
    assert messages[0] == "Force retry on 1 row(s): 1 failed again, dead."
    assert "the issue was tried and failed; the row is dead. Error: The learner has no e-mail address" in messages[1]
    row.refresh_from_db()
    assert row.state == IssuanceState.DEAD
    assert row.audit_entries.filter(message__startswith="retry forced although The learner has no e-mail").exists()


@pytest.mark.django_db(transaction=True)
def test_a_retry_that_fails_at_the_provider_says_when_it_is_tried_again(staff_client, credly, badge, learner, settings):
    settings.BADGES_BRIDGE_RETRY_BASE_SECONDS = settings.BADGES_BRIDGE_RETRY_MAX_SECONDS = 60
    row = dead_row(learner, badge, cause="unavailable")
    credly.inject("issue", "status", status=503, times=None)

    response = staff_client.post(
        reverse(LEDGER), {"action": "retry_now", "index": 0, "_selected_action": [row.pk]}, follow=True
    )

    messages = shown(response)
    assert messages[0] == "Retry now on 1 row(s): 1 failed again, will retry."
    assert "the issue was tried and failed; it is retried automatically at 20" in messages[1]
    assert " UTC. Error: Credly (127.0.0.1:" in messages[1]
    row.refresh_from_db()
    assert (row.state, row.operation, row.error_cause) == (IssuanceState.FAILED, Operation.ISSUE, "unavailable")


def test_retry_skips_rows_that_are_not_failing_and_says_why(staff_client, badge, learner):
    row = BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.ISSUED)
    response = staff_client.post(
        reverse(LEDGER), {"action": "retry_now", "index": 0, "_selected_action": [row.pk]}, follow=True
    )
    assert shown(response)[1].endswith("not retried: it is issued; only failed or dead rows are retried")


@pytest.mark.django_db(transaction=True)
def test_revoke_asks_for_a_reason_then_revokes_with_it(staff_client, credly, badge, learner, receivers):
    send.send_passing_status(learner, COURSE, True)
    row = BadgeIssuance.objects.get(user=learner)
    assert row.state == IssuanceState.ISSUED
    url = reverse(LEDGER)

    confirmation = staff_client.post(url, {"action": "revoke", "index": 0, "_selected_action": [row.pk]})
    page = confirmation.content.decode()
    assert "Revoke badges: are you sure?" in page
    assert "Revoked at the provider." in page
    assert "Yes, Credly stores it" in page
    row.refresh_from_db()
    assert row.state == IssuanceState.ISSUED  # nothing happened yet

    empty = staff_client.post(url, {"action": "revoke", "_selected_action": [row.pk], "confirm": "yes", "reason": " "})
    assert "This field is required." in empty.content.decode()

    response = staff_client.post(
        url, {"action": "revoke", "_selected_action": [row.pk], "confirm": "yes", "reason": "Plagiarism"}, follow=True
    )
    messages = shown(response)
    assert messages[0] == "Revoke on 1 row(s): 1 done."
    assert messages[1].endswith("revoked: revoked at the provider")
    row.refresh_from_db()
    assert (row.state, row.revoked_by, row.revoke_reason) == (IssuanceState.REVOKED, "operator", "Plagiarism")
    revoke = credly.requests_for("revoke")[-1]
    assert "Plagiarism" in revoke.body + str(revoke.query)


@pytest.mark.django_db(transaction=True)
def test_a_revoke_that_fails_at_the_provider_is_reported_as_failing(
    staff_client, credly, badge, learner, receivers, settings
):
    settings.BADGES_BRIDGE_RETRY_BASE_SECONDS = settings.BADGES_BRIDGE_RETRY_MAX_SECONDS = 60
    send.send_passing_status(learner, COURSE, True)
    row = BadgeIssuance.objects.get(user=learner)
    credly.inject("revoke", "status", status=503, times=None)

    response = staff_client.post(
        reverse(LEDGER),
        {"action": "revoke", "_selected_action": [row.pk], "confirm": "yes", "reason": "Fraud"},
        follow=True,
    )

    messages = shown(response)
    assert messages[0] == "Revoke on 1 row(s): 1 failed again, will retry."
    assert "the revoke was tried and failed; it is retried automatically at" in messages[1]
    assert "revoked" not in messages[0]
    row.refresh_from_db()
    assert (row.state, row.operation) == (IssuanceState.FAILED, Operation.REVOKE)
    listing = staff_client.get(reverse(LEDGER), {"health": "failing_revoke"})
    assert list(listing.context["cl"].result_list) == [row]
    assert "Failing to revoke, will retry" in listing.content.decode()


def test_revoke_of_a_row_the_policy_revoked_is_recorded_only(staff_client, badge, learner):
    row = BadgeIssuance.objects.create(
        user=learner, course_badge=badge, state=IssuanceState.REVOKED, revoked_by="policy", external_id="b1"
    )
    page = staff_client.post(reverse(LEDGER), {"action": "revoke", "index": 0, "_selected_action": [row.pk]})
    assert "Recorded as an operator&#x27;s revocation" in page.content.decode()
    response = staff_client.post(
        reverse(LEDGER),
        {"action": "revoke", "_selected_action": [row.pk], "confirm": "yes", "reason": "Misconduct"},
        follow=True,
    )
    assert shown(response)[0] == "Revoke on 1 row(s): 1 recorded only."
    assert "nothing new sent to the provider" in shown(response)[1]


def test_actions_from_the_row_page_come_back_to_it(staff_client, badge, learner):
    row = dead_row(learner, badge, cause="no_email")
    detail = reverse("admin:badges_bridge_badgeissuance_change", args=[row.pk])
    page = staff_client.get(detail).content.decode()
    assert 'value="retry_now"' in page
    assert 'value="force_retry"' in page
    assert 'value="revoke"' in page

    response = staff_client.post(
        reverse(LEDGER), {"action": "retry_now", "index": 0, "_selected_action": [row.pk], "_from_detail": "1"}
    )
    assert response.status_code == 302
    assert response["Location"] == detail


def test_view_only_staff_see_no_action_button_and_no_revoke_page(client, django_user_model, badge, learner):
    user = django_user_model.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_badgeissuance"))
    client.force_login(user)
    row = dead_row(learner, badge)

    page = client.get(reverse("admin:badges_bridge_badgeissuance_change", args=[row.pk])).content.decode()
    assert 'value="retry_now"' not in page
    response = client.post(reverse(LEDGER), {"action": "revoke", "index": 0, "_selected_action": [row.pk]})
    assert "Yes, revoke" not in response.content.decode()
    row.refresh_from_db()
    assert row.state == IssuanceState.DEAD


# -- the ledger and its pages --------------------------------------------------------------------------------------


def test_the_ledger_lists_operation_error_and_times_with_seconds(staff_client, badge, learner):
    error = "Credly (api.credly.com) refused PUT organizations/o/badges/b/revoke (HTTP 400): " + "very long " * 30
    row = BadgeIssuance.objects.create(
        user=learner,
        course_badge=badge,
        state=IssuanceState.FAILED,
        operation=Operation.REVOKE,
        last_error=error,
        attempts=3,
        qualified_at=timezone.now().replace(microsecond=0) - timedelta(days=1),
        next_attempt_at=timezone.now() + timedelta(minutes=5),
    )

    page = staff_client.get(reverse(LEDGER)).content.decode()

    assert "Failing to revoke, will retry" in page
    assert "revoke, 3 attempts" in page
    assert f'title="{error}"' in page  # the whole error on hover
    assert error not in page.replace(f'title="{error}"', "")  # shortened in the cell
    assert f"{timezone.localtime(row.qualified_at):%Y-%m-%d %H:%M:%S} UTC" in page
    assert "issued</span>" not in page  # never issued: no issue time


def test_the_ledger_shows_the_counts_of_the_whole_ledger_with_links(staff_client, badge, learner, django_user_model):
    dead_row(learner, badge)
    other = django_user_model.objects.create_user("grace", "grace@example.com")
    BadgeIssuance.objects.create(user=other, course_badge=badge, state=IssuanceState.ISSUED)
    page = staff_client.get(reverse(LEDGER)).content.decode()
    assert 'Dead, need an operator: <a href="/admin/badges_bridge/badgeissuance/?state=dead">1</a>' in page
    assert 'Issued: <a href="/admin/badges_bridge/badgeissuance/?state=issued">1</a>' in page
    assert reverse("admin:badges_bridge_healthoverview_changelist") in page


def test_the_row_page_is_read_only_with_what_to_do_and_a_one_line_audit_trail(staff_client, badge, learner):
    row = dead_row(learner, badge, error="The learner has no e-mail address", cause="no_email")
    AuditEntry.objects.create(
        issuance=row, from_state="issuing", to_state="dead", actor=f"admin:user#{learner.pk}", message="why"
    )
    BadgeIssuance.objects.filter(pk=row.pk).update(lease_token="secret-lease-token")
    url = reverse("admin:badges_bridge_badgeissuance_change", args=[row.pk])

    response = staff_client.get(url)
    page = response.content.decode()

    assert response.context["title"] == f"Badge issuance #{row.pk}"
    assert 'name="_save"' not in page
    assert "Add an e-mail address to the learner&#x27;s account, then run Retry now on the row." in page
    assert "Issuing → Dead (needs an operator)" in page
    assert "admin ada" in page
    assert "secret-lease-token" not in page
    assert staff_client.post(url, {"state": "issued"}).status_code == 403
    history = staff_client.get(reverse("admin:badges_bridge_badgeissuance_history", args=[row.pk]))
    assert history["Location"] == f"{url}#audit-trail"


# -- the health overview -------------------------------------------------------------------------------------------


def test_the_health_overview_says_what_is_broken_and_what_to_do(staff_client, credly, badge, learner):
    dead_row(learner, badge, error="The learner has no e-mail address: add one", cause="no_email")
    ProviderAccount.objects.filter(pk=badge.template.account_id).update(
        token_expires_at=timezone.now() + timedelta(days=3)
    )

    response = staff_client.get(reverse("admin:badges_bridge_healthoverview_changelist"))
    page = response.content.decode()

    assert response.status_code == 200
    report = response.context["report"]
    assert report.buckets["dead"] == 1
    assert "1 dead row(s) need an operator" in report.problems
    assert any(problem.startswith("account Credly main: API token expires 20") for problem in report.problems)
    assert "The learner has no e-mail address" in page
    assert "Add an e-mail address to the learner&#x27;s account" in page
    assert '<a href="/admin/badges_bridge/badgeissuance/?state=dead&amp;error_cause=no_email">1</a>' in page
    assert "Dead: could not issue" in page
    assert f"?state=dead&amp;course_badge__template__account__id__exact={badge.template.account_id}" in page
    assert "expires soon" in page
    assert "Redrive: never recorded" in page


def test_the_health_overview_is_healthy_when_nothing_needs_an_operator(staff_client, settings):
    settings.BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS = 0
    settings.BADGES_BRIDGE_DRIFT_INTERVAL_SECONDS = 0
    page = staff_client.get(reverse("admin:badges_bridge_healthoverview_changelist")).content.decode()
    assert "All is well" in page


def test_the_health_overview_follows_the_ledger_view_permission(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    client.force_login(user)
    url = reverse("admin:badges_bridge_healthoverview_changelist")
    assert client.get(url).status_code == 403
    user.user_permissions.set(Permission.objects.filter(codename="view_badgeissuance"))
    assert client.get(url).status_code == 200
    assert "Health overview" in client.get(reverse("admin:index")).content.decode()
    assert client.get(f"{url}1/change/").status_code == 404  # no other page: the rows are the ledger's


def test_periodic_runs_keep_their_latest_result(credly, badge, learner, settings):
    tasks.redrive()
    tasks.redrive()
    assert MaintenanceRun.objects.filter(job="redrive").count() == 1
    run = MaintenanceRun.objects.get(job="redrive")
    assert run.ok is True
    assert run.summary.startswith("queued 0 row(s)")
    assert run.finished_at >= run.started_at

    BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.ISSUED, external_id="gone-1")
    credly.inject("any", "status", status=503, times=None)
    tasks.check_drift()
    drift = MaintenanceRun.objects.get(job="drift")
    assert drift.ok is False
    assert drift.summary.startswith("Credly main: failed: Credly (127.0.0.1:")
    [job] = [job for job in api.health_report().jobs if job.job == "drift"]
    assert job.warning == "the latest run failed"


# -- accounts and templates ----------------------------------------------------------------------------------------


def test_saving_an_account_tests_its_connection(staff_client, credly):
    url = reverse("admin:badges_bridge_provideraccount_add")

    response = staff_client.post(url, new_account_form(credly, api_token="wrong-token"), follow=True)

    [message] = shown(response)
    assert "was added successfully. But its connection test failed: Credly (127.0.0.1:" in message
    assert "refused the API token" in message
    assert "Enter a valid API token on the provider account" in message
    assert ProviderAccount.objects.get().last_check_ok is False

    account = ProviderAccount.objects.get()
    change = reverse("admin:badges_bridge_provideraccount_change", args=[account.pk])
    response = staff_client.post(change, new_account_form(credly), follow=True)
    [message] = shown(response)
    assert "was changed successfully. Its connection test passed: Credly organization" in message


def test_a_typed_token_is_asked_for_again_after_a_validation_error(staff_client, credly):
    response = staff_client.post(
        reverse("admin:badges_bridge_provideraccount_add"), new_account_form(credly, organization_id="")
    )
    errors = response.context["adminform"].form.errors
    assert "organization_id" in errors
    assert errors["api_token"] == ["Enter the API token again: for its safety it is never sent back to the browser."]
    assert credly.account_fields()["token"] not in response.content.decode()


def test_a_failed_template_sync_says_why_and_is_recorded_on_the_account(staff_client, credly):
    account = make_account(credly)
    credly.inject("list_templates", "status", status=503, times=None)
    url = reverse("admin:badges_bridge_provideraccount_changelist")

    response = staff_client.post(url, {"action": "sync_templates", "index": 0, "_selected_action": [account.pk]})

    [message] = shown(response)
    assert message.startswith(f"{account.name}: Template sync failed: Credly (127.0.0.1:")
    assert "could not be queued" not in message
    account.refresh_from_db()
    assert (account.last_sync_ok, account.last_synced_at) == (False, None)
    assert "is having trouble: the work is retried automatically" in account.last_sync_message
    credly.server.faults.clear()
    credly.seed_template("Python Basics")
    assert tasks.sync_templates(account.pk) == "1 new, 0 updated, 0 unchanged, 0 no longer at the provider"
    account.refresh_from_db()
    assert account.last_sync_ok is True
    assert (
        account.last_sync_message == "Template sync done: 1 new, 0 updated, 0 unchanged, 0 no longer at the provider."
    )


def test_a_sync_task_that_fails_records_it_and_does_not_raise(credly):
    account = make_account(credly, enabled=False)
    assert tasks.sync_templates(account.pk).startswith("failed: Provider account 'credly-main' is disabled")
    account.refresh_from_db()
    assert account.last_sync_ok is False


def test_a_template_archived_at_the_provider_is_seen_after_the_refusal(
    credly, badge, learner, receivers, django_capture_on_commit_callbacks
):
    fields = credly.account_fields()
    credly.server.set_template_state(fields["organization_id"], badge.template.external_id, "archived")

    with django_capture_on_commit_callbacks(execute=True):
        send.send_passing_status(learner, COURSE, True)

    row = BadgeIssuance.objects.get(user=learner)
    assert (row.state, row.error_cause) == (IssuanceState.DEAD, "refused")
    assert BadgeTemplate.objects.get(pk=badge.template_id).state == BadgeTemplate.State.ARCHIVED
    result = api.retry_issuance(row.pk, "admin:user#1")
    assert "The badge template 'Course completion' is archived" in result.message


def test_provider_names_are_shown_not_their_codes(staff_client, credly):
    make_account(credly, name="Main")
    page = staff_client.get(reverse("admin:badges_bridge_provideraccount_changelist")).content.decode()
    assert '<td class="field-provider_shown">Credly</td>' in page
    assert "Main (Credly)" in str(ProviderAccount.objects.get())


# -- course badges -------------------------------------------------------------------------------------------------


def test_course_badge_counts_link_to_their_ledger_rows(staff_client, badge, learner, django_user_model):
    dead_row(learner, badge)
    other = django_user_model.objects.create_user("grace", "grace@example.com")
    BadgeIssuance.objects.create(user=other, course_badge=badge, state=IssuanceState.REVOKED)
    BadgeTemplate.objects.filter(pk=badge.template_id).update(state=BadgeTemplate.State.ARCHIVED)

    page = staff_client.get(reverse("admin:badges_bridge_coursebadge_changelist")).content.decode()

    dead_link = f"/admin/badges_bridge/badgeissuance/?course_badge__exact={badge.pk}&amp;state=dead"
    assert f'<a href="{dead_link}">1</a>' in page
    assert f"course_badge__exact={badge.pk}&amp;state=revoked" in page
    assert '<span class="bb-state bb-bad">archived</span>' in page
    listing = staff_client.get(reverse(LEDGER), {"course_badge__exact": badge.pk, "state": "dead"})
    assert listing.context["cl"].result_count == 1


def test_a_course_badge_with_ledger_rows_suggests_disabling_instead_of_deleting(staff_client, badge, learner):
    dead_row(learner, badge)
    change = reverse("admin:badges_bridge_coursebadge_change", args=[badge.pk])

    response = staff_client.get(reverse("admin:badges_bridge_coursebadge_delete", args=[badge.pk]))

    assert response.status_code == 302
    assert response["Location"] == change
    [message] = shown(response)
    assert "untick 'Enabled' and save" in message
    response = staff_client.post(
        reverse("admin:badges_bridge_coursebadge_changelist"),
        {"action": "delete_selected", "index": 0, "_selected_action": [badge.pk]},
    )
    assert "untick 'Enabled' and save" in shown(response)[0]
    assert CourseBadge.objects.filter(pk=badge.pk).exists()


def test_an_unused_course_badge_can_still_be_deleted(staff_client, badge):
    changelist = reverse("admin:badges_bridge_coursebadge_changelist")
    staff_client.post(changelist, {"action": "delete_selected", "_selected_action": [badge.pk], "post": "yes"})
    assert not CourseBadge.objects.exists()


# -- times ---------------------------------------------------------------------------------------------------------


def test_times_show_seconds_and_the_time_zone(settings):
    from badges_bridge.display import format_time

    moment = datetime(2026, 12, 1, 23, 5, 17, tzinfo=UTC)
    assert format_time(moment) == "2026-12-01 23:05:17 UTC"
    settings.TIME_ZONE = "Europe/Paris"
    assert format_time(moment) == "2026-12-02 00:05:17 CET"
    assert format_time(None) == "-"


def test_the_row_page_shows_the_attempts_and_provider_requests_of_the_award(staff_client, badge, learner):
    row = BadgeIssuance.objects.create(
        user=learner, course_badge=badge, state=IssuanceState.ISSUED, external_id="b1", award_attempts=2
    )
    BadgeIssuance.objects.filter(pk=row.pk).update(provider_requests=3)
    page = staff_client.get(reverse("admin:badges_bridge_badgeissuance_change", args=[row.pk])).content.decode()
    for label, value in (("Award attempts", "2"), ("Provider requests", "3"), ("Lane", "Interactive")):
        assert re.search(rf"{label}:?</label>\s*<div class=\"readonly\">{value}", page), label
