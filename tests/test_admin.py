"""The operator's Django admin."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
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

pytestmark = pytest.mark.django_db
COURSE = CourseKey.from_string("course-v1:Org+Admin+2026")


@pytest.fixture
def staff_client(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    return client


def test_token_is_write_only(staff_client, credly):
    fields = credly.account_fields()
    response = staff_client.post(
        reverse("admin:badges_bridge_provideraccount_add"),
        {
            "name": "Credly main",
            "provider": "credly",
            "base_url_preset": "",
            "api_base_url": fields["base_url"],
            "organization_id": fields["organization_id"],
            "api_token": fields["token"],
            "enabled": "on",
            "revoke_mode": "default",
        },
    )
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
    listing = staff_client.get(url, {"state": "dead", "q": "ada", "course_badge__course_key": str(COURSE)})
    assert list(listing.context["cl"].result_list) == [row]
    assert staff_client.get(url, {"q": "ada@example.com"}).context["cl"].result_count == 1
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url, {"action": "retry_now", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.state == IssuanceState.ISSUED
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url, {"action": "revoke", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.state == IssuanceState.REVOKED
    assert credly.live_awards(badge.template.external_id, learner.email) == []
    detail = staff_client.get(reverse("admin:badges_bridge_badgeissuance_change", args=[row.pk])).content.decode()
    assert "admin:user#" in detail  # the audit log shows who acted


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


def staff_with(django_user_model, client, *codenames: str):
    """A logged-in staff user (not a superuser) with only these rejected-event permissions."""
    user = django_user_model.objects.create_user("operator", "operator@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
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
    client = staff_with(django_user_model, client, "view_rejectedevent", "change_rejectedevent")
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
    client = staff_with(django_user_model, client, "view_rejectedevent")
    url = reverse("admin:badges_bridge_rejectedevent_changelist")
    listing = client.get(url)
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [event]
    assert "Replay selected events" not in listing.content.decode()
    client.post(url, {"action": "replay_selected", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("waiting", 2)
