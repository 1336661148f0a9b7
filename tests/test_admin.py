"""The operator's Django admin."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge.data import EventKind, LearnerEvent
from badges_bridge.models import (
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    IssuanceState,
    ProviderAccount,
    RejectedEvent,
    RejectedEventStatus,
)
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.forms import new_account_form

pytestmark = pytest.mark.django_db
COURSE = CourseKey.from_string("course-v1:Org+Admin+2026")


@pytest.fixture
def staff_client(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    return client


def test_token_is_write_only(staff_client, credly):
    fields = credly.account_fields()
    response = staff_client.post(reverse("admin:badges_bridge_provideraccount_add"), new_account_form(credly))
    assert response.status_code == 302, response.content
    account = ProviderAccount.objects.get()
    assert account.get_token() == fields["token"]
    page = staff_client.get(reverse("admin:badges_bridge_provideraccount_change", args=[account.pk]))
    assert fields["token"] not in page.content.decode()
    assert account.token_ciphertext not in page.content.decode()
    listing = staff_client.get(reverse("admin:badges_bridge_provideraccount_changelist")).content.decode()
    assert fields["token"] not in listing


def test_new_account_needs_a_token_and_an_organization(staff_client):
    response = staff_client.post(
        reverse("admin:badges_bridge_provideraccount_add"),
        {
            "name": "x",
            "provider": "credly",
            "base_url_preset": "https://api.credly.com/v1/",
            "revoke_mode": "default",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "api_token" in errors
    assert "organization_id" in errors


def test_connection_and_sync_actions(staff_client, credly):
    account = make_account(credly)
    credly.seed_template("Python Basics")
    url = reverse("admin:badges_bridge_provideraccount_changelist")
    response = staff_client.post(url, {"action": "test_connection", "_selected_action": [account.pk]}, follow=True)
    assert "Credly organization" in response.content.decode()
    staff_client.post(url, {"action": "sync_templates", "_selected_action": [account.pk]})
    assert BadgeTemplate.objects.filter(account=account, name="Python Basics").exists()


def test_course_badge_validation(staff_client, credly):
    template = make_template(make_account(credly), credly)
    response = staff_client.post(
        reverse("admin:badges_bridge_coursebadge_add"),
        {
            "course_key": str(COURSE),
            "template": template.pk,
            "criterion": "grade_at_least",
            "revoke_policy": "never",
            "enabled": "on",
        },
    )
    assert "A grade threshold" in response.content.decode()
    response = staff_client.post(
        reverse("admin:badges_bridge_coursebadge_add"),
        {
            "course_key": str(COURSE),
            "template": template.pk,
            "criterion": "grade_at_least",
            "grade_threshold": "75",
            "revoke_policy": "never",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    assert CourseBadge.objects.get().grade_threshold == 75


def test_account_restricted_to_other_organizations(staff_client, credly):
    template = make_template(make_account(credly, allowed_course_orgs="OtherOrg"), credly)
    response = staff_client.post(
        reverse("admin:badges_bridge_coursebadge_add"),
        {
            "course_key": str(COURSE),
            "template": template.pk,
            "criterion": "passed",
            "revoke_policy": "never",
        },
    )
    assert "may not be used by courses of organization Org" in response.content.decode()


def test_ledger_actions(staff_client, credly, learner, django_capture_on_commit_callbacks):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    row = BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.DEAD, last_error="x")
    url = reverse("admin:badges_bridge_badgeissuance_changelist")
    listing = staff_client.get(url, {"state": "dead", "q": "ada", "course": str(COURSE)})
    assert list(listing.context["cl"].result_list) == [row]
    assert staff_client.get(url, {"q": "ada@example.com"}).context["cl"].result_count == 1
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url, {"action": "retry_now", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.state == IssuanceState.ISSUED
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            url, {"action": "revoke", "_selected_action": [row.pk], "confirm": "yes", "reason": "Issued in error"}
        )
    row.refresh_from_db()
    assert (row.state, row.revoke_reason) == (IssuanceState.REVOKED, "Issued in error")
    assert credly.live_awards(badge.template.external_id, learner.email) == []
    detail = staff_client.get(reverse("admin:badges_bridge_badgeissuance_change", args=[row.pk])).content.decode()
    assert "admin root" in detail  # the audit log shows who acted, by username
    assert "admin:user#" not in detail
    assert row.external_id in detail  # the badge history shows the revoked badge
    assert "Revoked by this plugin" in detail


def test_course_badge_list_shows_counts(staff_client, credly, learner):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.ISSUED)
    response = staff_client.get(reverse("admin:badges_bridge_coursebadge_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_list[0].issued == 1


def test_ledger_lists_rows_whose_learner_is_missing(staff_client, credly):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    BadgeIssuance.objects.create(user_id=424242, course_badge=badge, state=IssuanceState.DEAD)
    response = staff_client.get(reverse("admin:badges_bridge_badgeissuance_changelist"))
    assert "user #424242 (missing)" in response.content.decode()


def _staff_client(client, django_user_model, username: str, *codenames: str):
    """A logged-in staff user (not a superuser) holding only the given badges_bridge permissions."""
    user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    granted = Permission.objects.filter(content_type__app_label="badges_bridge", codename__in=codenames)
    user.user_permissions.set(granted)
    client.force_login(user)
    return client


def waiting_event(learner) -> RejectedEvent:
    """A passing-status event of ``learner`` that met a database error and waits for a replay."""
    event = LearnerEvent(
        event_id="evt-1",
        event_type="org.openedx.learning.course.passing.status.updated.v1",
        occurred_at=timezone.now(),
        kind=EventKind.PASSING_STATUS,
        user_id=learner.pk,
        course_key=COURSE,
        run_key=str(COURSE),
        is_passing=True,
    )
    return RejectedEvent.objects.create(
        event_id=event.event_id,
        event_type=event.event_type,
        course_key=str(COURSE),
        user_id=learner.pk,
        reason="processing error: OperationalError: deadlock",
        status=RejectedEventStatus.WAITING,
        payload=event.to_payload(),
        next_attempt_at=timezone.now() + timedelta(hours=1),
        attempts=2,
        last_error="OperationalError: Lock wait timeout exceeded",
    )


def test_a_user_who_may_change_rejected_events_replays_them(
    client, django_user_model, credly, learner, django_capture_on_commit_callbacks
):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    event = waiting_event(learner)
    invalid = RejectedEvent.objects.create(event_id="bad", reason="invalid payload: no course")
    client = _staff_client(client, django_user_model, "operator", "view_rejectedevent", "change_rejectedevent")
    url = reverse("admin:badges_bridge_rejectedevent_changelist")
    listing = client.get(url, {"status": "waiting"})
    assert list(listing.context["cl"].result_list) == [event]
    page = listing.content.decode()
    assert "Replay selected events" in page
    assert "Lock wait timeout exceeded" in page
    assert "Waiting, will be retried automatically" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, {"action": "replay_selected", "_selected_action": [event.pk, invalid.pk]}, follow=True
        )
    assert "1 event(s) replayed, 0 failed again (see their last error), 1 skipped" in response.content.decode()
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("replayed", 2)
    assert BadgeIssuance.objects.get(user=learner, course_badge=badge).state == IssuanceState.ISSUED

    change_url = reverse("admin:badges_bridge_rejectedevent_change", args=[event.pk])
    assert client.get(change_url).context["adminform"].form.fields == {}  # every field is read-only
    client.post(change_url, {"reason": "edited", "status": "waiting"})
    event.refresh_from_db()
    assert (event.status, event.reason) == ("replayed", "processing error: OperationalError: deadlock")


def test_a_view_only_user_can_neither_see_nor_run_the_replay(client, django_user_model, learner):
    event = waiting_event(learner)
    client = _staff_client(client, django_user_model, "operator", "view_rejectedevent")
    url = reverse("admin:badges_bridge_rejectedevent_changelist")
    listing = client.get(url)
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [event]
    assert "Replay selected events" not in listing.content.decode()
    client.post(url, {"action": "replay_selected", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("waiting", 2)


def _offered_actions(client, changelist: str) -> set[str]:
    form = client.get(reverse(changelist)).context["action_form"]
    return {name for name, _label in form.fields["action"].choices if name} if form else set()


@pytest.fixture
def viewer_client(client, django_user_model):
    return _staff_client(client, django_user_model, "viewer", "view_badgeissuance", "view_provideraccount")


@pytest.fixture
def editor_client(client, django_user_model):
    return _staff_client(
        client,
        django_user_model,
        "editor",
        "view_badgeissuance",
        "change_badgeissuance",
        "view_provideraccount",
        "change_provideraccount",
    )


def test_view_only_staff_cannot_retry_or_revoke(viewer_client, credly, learner, django_capture_on_commit_callbacks):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    dead = BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.DEAD, last_error="x")
    url = "admin:badges_bridge_badgeissuance_changelist"
    assert viewer_client.get(reverse(url)).status_code == 200
    assert _offered_actions(viewer_client, url) == set()
    with django_capture_on_commit_callbacks(execute=True):
        for action in ("retry_now", "force_retry", "revoke"):
            viewer_client.post(reverse(url), {"action": action, "index": 0, "_selected_action": [dead.pk]})
        viewer_client.post(
            reverse(url), {"action": "revoke", "_selected_action": [dead.pk], "confirm": "yes", "reason": "x"}
        )
    dead.refresh_from_db()
    assert (dead.state, dead.attempts, dead.audit_entries.count()) == (IssuanceState.DEAD, 0, 0)
    assert credly.server.journal == []


def test_view_only_staff_cannot_test_or_sync_accounts(viewer_client, credly, django_capture_on_commit_callbacks):
    account = make_account(credly)
    credly.seed_template("Python Basics")
    url = "admin:badges_bridge_provideraccount_changelist"
    assert _offered_actions(viewer_client, url) == set()
    with django_capture_on_commit_callbacks(execute=True):
        for action in ("test_connection", "sync_templates"):
            viewer_client.post(reverse(url), {"action": action, "index": 0, "_selected_action": [account.pk]})
    account.refresh_from_db()
    assert (account.last_check_at, account.last_synced_at) == (None, None)
    assert not BadgeTemplate.objects.exists()
    assert credly.server.journal == []


def test_staff_with_change_permission_run_the_actions(
    editor_client, credly, learner, django_capture_on_commit_callbacks
):
    account = make_account(credly)
    badge = make_course_badge(make_template(account, credly), COURSE)
    row = BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.DEAD, last_error="x")
    ledger, accounts = "admin:badges_bridge_badgeissuance_changelist", "admin:badges_bridge_provideraccount_changelist"
    assert _offered_actions(editor_client, ledger) == {"retry_now", "force_retry", "revoke", "issue_again"}
    assert _offered_actions(editor_client, accounts) == {"test_connection", "sync_templates", "rotate_webhook_token"}
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post(reverse(ledger), {"action": "retry_now", "index": 0, "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.state == IssuanceState.ISSUED
    confirmation = editor_client.post(reverse(ledger), {"action": "revoke", "index": 0, "_selected_action": [row.pk]})
    assert "Yes, revoke" in confirmation.content.decode()
    row.refresh_from_db()
    assert row.state == IssuanceState.ISSUED  # nothing happens before the confirmation
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post(
            reverse(ledger), {"action": "revoke", "_selected_action": [row.pk], "confirm": "yes", "reason": "Fraud"}
        )
    row.refresh_from_db()
    assert row.state == IssuanceState.REVOKED
    editor_client.post(reverse(accounts), {"action": "test_connection", "index": 0, "_selected_action": [account.pk]})
    editor_client.post(reverse(accounts), {"action": "sync_templates", "index": 0, "_selected_action": [account.pk]})
    account.refresh_from_db()
    assert account.last_check_ok is True
    assert account.last_synced_at is not None


def _course_badge_form(badge: CourseBadge, **changes) -> dict:
    data = {
        "course_key": str(badge.course_key),
        "template": badge.template_id,
        "criterion": badge.criterion,
        "revoke_policy": badge.revoke_policy,
        "enabled": "on",
    }
    return {**data, **changes}


def test_template_is_read_only_once_badges_were_issued(staff_client, credly, learner):
    account = make_account(credly)
    first, second = make_template(account, credly, "First"), make_template(account, credly, "Second")
    badge = make_course_badge(first, COURSE)
    BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.ISSUED)
    url = reverse("admin:badges_bridge_coursebadge_change", args=[badge.pk])

    page = staff_client.get(url)
    assert "template" not in page.context["adminform"].form.fields
    assert "template" in page.context["adminform"].readonly_fields

    response = staff_client.post(url, _course_badge_form(badge, template=second.pk, revoke_policy="criterion_unmet"))
    assert response.status_code == 302
    badge.refresh_from_db()
    assert (badge.template, badge.revoke_policy) == (first, "criterion_unmet")


def test_template_stays_editable_until_badges_were_issued(staff_client, credly):
    account = make_account(credly)
    first, second = make_template(account, credly, "First"), make_template(account, credly, "Second")
    badge = make_course_badge(first, COURSE)
    url = reverse("admin:badges_bridge_coursebadge_change", args=[badge.pk])

    assert "template" in staff_client.get(url).context["adminform"].form.fields
    assert staff_client.post(url, _course_badge_form(badge, template=second.pk)).status_code == 302
    badge.refresh_from_db()
    assert badge.template == second


def test_badge_whose_template_was_archived_can_still_be_disabled(staff_client, credly, learner):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.ISSUED)
    BadgeTemplate.objects.filter(pk=badge.template_id).update(state=BadgeTemplate.State.ARCHIVED)
    data = _course_badge_form(badge)
    del data["enabled"]

    response = staff_client.post(reverse("admin:badges_bridge_coursebadge_change", args=[badge.pk]), data)

    assert response.status_code == 302
    badge.refresh_from_db()
    assert badge.enabled is False


def _account_form(account: ProviderAccount, **changes) -> dict:
    data = {
        "name": account.name,
        "provider": account.provider,
        "base_url_preset": "",
        "api_base_url": account.api_base_url,
        "organization_id": account.organization_id,
        "api_token": "",
        "enabled": "on",
        "revoke_mode": account.revoke_mode,
    }
    return {**data, **changes}


@pytest.fixture
def elsewhere():
    """A server on another port, standing for a host that must never receive the stored token."""
    from badges_bridge.testing.server import FakeServer

    with FakeServer() as server:
        yield server


@pytest.mark.parametrize(
    "changes",
    [
        {"api_base_url": "{elsewhere}v1/"},
        {"base_url_preset": "https://sandbox-api.credly.com/v1/"},
        {"provider": "accredible"},
    ],
    ids=["url", "preset", "provider"],
)
def test_moving_an_account_needs_the_token_again(staff_client, credly, elsewhere, changes):
    account = make_account(credly)
    before = (account.api_base_url, account.provider, account.token_ciphertext)
    url = reverse("admin:badges_bridge_provideraccount_change", args=[account.pk])
    posted = {name: value.format(elsewhere=elsewhere.base_url) for name, value in changes.items()}

    response = staff_client.post(url, _account_form(account, **posted))

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["api_token"]
    assert "enter the API token again" in error
    account.refresh_from_db()
    assert (account.api_base_url, account.provider, account.token_ciphertext) == before
    changelist = reverse("admin:badges_bridge_provideraccount_changelist")
    staff_client.post(changelist, {"action": "test_connection", "index": 0, "_selected_action": [account.pk]})
    assert elsewhere.journal == []


def test_moving_an_account_with_a_new_token_is_accepted(staff_client, credly, elsewhere):
    account = make_account(credly)
    url = reverse("admin:badges_bridge_provideraccount_change", args=[account.pk])
    moved = _account_form(account, api_base_url=f"{elsewhere.base_url}v1/", api_token="the-other-token")

    assert staff_client.post(url, moved).status_code == 302
    account.refresh_from_db()
    assert (account.api_base_url, account.get_token()) == (f"{elsewhere.base_url}v1/", "the-other-token")


def test_other_changes_keep_the_stored_token(staff_client, credly):
    account = make_account(credly)
    url = reverse("admin:badges_bridge_provideraccount_change", args=[account.pk])

    assert staff_client.post(url, _account_form(account, name="Renamed")).status_code == 302
    account.refresh_from_db()
    assert (account.name, account.get_token()) == ("Renamed", credly.account_fields()["token"])


def test_account_form_requires_https_for_other_hosts(staff_client, credly):
    fields = credly.account_fields()
    data = {
        "name": "Credly plain",
        "provider": "credly",
        "base_url_preset": "",
        "api_base_url": "http://api.credly.com/v1/",
        "organization_id": fields["organization_id"],
        "api_token": fields["token"],
        "revoke_mode": "default",
    }
    response = staff_client.post(reverse("admin:badges_bridge_provideraccount_add"), data)

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["api_base_url"]
    assert "must use https" in error
    assert not ProviderAccount.objects.exists()


def test_provider_replies_are_cut_and_escaped_in_the_admin(staff_client, credly):
    account = make_account(credly)
    reply = "<script>alert('owned')</script>" + "y" * 1000
    changelist = reverse("admin:badges_bridge_provideraccount_changelist")

    for action in ("test_connection", "sync_templates"):
        credly.server.inject("GET", r"^/v1/organizations/", status=403, body={"message": reply})
        response = staff_client.post(changelist, {"action": action, "index": 0, "_selected_action": [account.pk]})
        [shown] = [str(message) for message in get_messages(response.wsgi_request)]
        assert len(shown) <= 300, action
        assert shown.endswith("…"), action
        page = staff_client.get(changelist).content.decode()
        assert "&lt;script&gt;alert" in page, action
        assert "<script>alert" not in page, action

    detail = staff_client.get(reverse("admin:badges_bridge_provideraccount_change", args=[account.pk])).content.decode()
    assert "&lt;script&gt;alert" in detail
    assert "<script>alert" not in detail
    assert "y" * 300 not in detail
