"""Credly webhooks: the endpoint, the fetch-back of each event, and what the fetched events change."""

import logging
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, ledger, webhooks
from badges_bridge.models import (
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    IssuanceState,
    OperatorNotice,
    ProviderAccount,
    ProviderEvent,
    ProviderEventStatus,
    RevokedBy,
    RevokePolicy,
)
from badges_bridge.providers.base import AwardState
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Hooks+2026")
S = IssuanceState
St = ProviderEventStatus
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def account(credly):
    return make_account(credly)


@pytest.fixture
def badge(credly, account):
    return make_course_badge(make_template(account, credly), COURSE, revoke_policy=RevokePolicy.CRITERION_UNMET)


@pytest.fixture
def post(client, deliver):
    """``post(url, body)``: POST a body to a webhook URL through the test client, committing; the status."""

    def send_body(url: str, body: bytes) -> int:
        path = url.removeprefix("http://lms.example.com")
        return deliver(client.post, path, data=body, content_type="application/json").status_code

    return send_body


@pytest.fixture
def notify(credly, account, post):
    """``notify(event=None, **overrides)``: Credly posts the stub of an event (default: the latest) to our URL."""

    def send_stub(event=None, **overrides) -> int:
        return credly.notify(webhooks.webhook_url(account), event, post=post, **overrides)

    return send_stub


@pytest.fixture
def issued(credly, badge, learner, deliver, work_queue) -> BadgeIssuance:
    """The learner passed and holds the badge (pending at Credly)."""
    deliver(send.send_passing_status, learner, COURSE, True)
    deliver(work_queue.run)
    row = BadgeIssuance.objects.get(user=learner)
    assert (row.state, row.provider_state, row.provider_public) == (S.ISSUED, "pending", True)
    return row


def org(credly) -> str:
    return credly.organization().id


def record(event_id: str) -> ProviderEvent:
    return ProviderEvent.objects.get(event_id=event_id)


# -- the endpoint -------------------------------------------------------------------------------------------------


def test_each_account_gets_its_own_secret_webhook_url(credly, account, settings):
    other = make_account(credly, name="other", account="other")
    url = webhooks.webhook_url(account)
    token = account.get_webhook_token()

    assert url == f"http://lms.example.com/api/badges_bridge/webhooks/{token}/"
    assert url.removeprefix("http://lms.example.com") == reverse("badges_bridge:provider-webhook", args=[token])
    assert len(token) >= 43
    assert token != other.get_webhook_token()
    assert token not in account.webhook_token_ciphertext  # kept encrypted; only its digest is searchable
    assert ProviderAccount.objects.filter(webhook_token_digest=account.webhook_token_digest).count() == 1


def test_rotation_gives_a_new_url_and_the_old_one_stops_working(account, client):
    old = webhooks.webhook_url(account).removeprefix("http://lms.example.com")
    account.rotate_webhook_token()
    new = webhooks.webhook_url(account).removeprefix("http://lms.example.com")

    assert new != old
    assert client.post(old, data=b'{"id": "e1"}', content_type="application/json").status_code == 404
    assert client.post(new, data=b'{"id": "e1"}', content_type="application/json").status_code == 200


@pytest.mark.parametrize("kind", ["unknown", "one character off", "empty-looking", "another account's digest"])
def test_unknown_and_wrong_tokens_get_the_same_404(credly, account, client, kind):
    token = account.get_webhook_token()
    candidates = {
        "unknown": "x" * 43,
        "one character off": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "empty-looking": "-",
        "another account's digest": account.webhook_token_digest,
    }
    response = client.post(
        reverse("badges_bridge:provider-webhook", args=[candidates[kind]]),
        data=b'{"id": "e1"}',
        content_type="application/json",
    )

    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    assert not ProviderEvent.objects.exists()


def test_the_token_is_looked_up_by_its_digest_only(account, client):
    token = account.get_webhook_token()
    path = reverse("badges_bridge:provider-webhook", args=[token])
    with CaptureQueriesContext(connection) as queries:
        client.post(path, data=b'{"id": "e1"}', content_type="application/json")

    sql = " ".join(query["sql"] for query in queries.captured_queries)
    assert token not in sql
    assert account.webhook_token_digest in sql


def test_disabled_accounts_and_providers_without_webhooks_get_404(credly, accredible, account, client):
    accredible_account = make_account(accredible)
    ProviderAccount.objects.filter(pk=account.pk).update(enabled=False)

    for target in (account, accredible_account):
        path = reverse("badges_bridge:provider-webhook", args=[target.get_webhook_token()])
        assert client.post(path, data=b'{"id": "e1"}', content_type="application/json").status_code == 404
    assert webhooks.supports_webhooks(accredible_account) is False


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_get_405(account, client, method):
    path = reverse("badges_bridge:provider-webhook", args=[account.get_webhook_token()])

    response = getattr(client, method)(path)

    assert (response.status_code, response["Allow"]) == (405, "POST")


def test_a_malformed_notification_gets_400(account, client):
    path = reverse("badges_bridge:provider-webhook", args=[account.get_webhook_token()])

    response = client.post(path, data=b'{"event_type": "badge.deleted"}', content_type="application/json")

    assert (response.status_code, response.json()) == (400, {"detail": "the notification has no valid event id"})
    assert not ProviderEvent.objects.exists()


def test_a_huge_notification_is_refused_before_it_is_read(account, client, monkeypatch):
    path = reverse("badges_bridge:provider-webhook", args=[account.get_webhook_token()])
    monkeypatch.setattr("badges_bridge.providers.credly.CredlyProvider.parse_notification", pytest.fail, raising=True)

    response = client.post(path, data=b'{"id": "e1", "pad": "' + b"x" * 70_000 + b'"}', content_type="application/json")

    assert (response.status_code, response.json()) == (400, {"detail": "the notification is too large"})
    assert not ProviderEvent.objects.exists()


def test_a_notification_naming_another_organization_is_ignored_with_200(account, client, credly):
    path = reverse("badges_bridge:provider-webhook", args=[account.get_webhook_token()])

    response = client.post(
        path, data=b'{"id": "e1", "organization_id": "someone-else"}', content_type="application/json"
    )

    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert not ProviderEvent.objects.exists()
    assert credly.server.journal == []


def test_the_answer_is_200_at_once_and_the_fetch_is_queued(account, client, django_capture_on_commit_callbacks):
    path = reverse("badges_bridge:provider-webhook", args=[account.get_webhook_token()])
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(path, data=b'{"id": "e1"}', content_type="application/json")
        again = client.post(path, data=b'{"id": "e1"}', content_type="application/json")

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(queued) == 1  # one fetch queued, and nothing asked of the provider during the request
    assert (record("e1").status, record("e1").account_id) == (St.RECEIVED, account.pk)


def test_refused_requests_never_log_the_token(account, client, caplog):
    token = account.get_webhook_token()
    path = reverse("badges_bridge:provider-webhook", args=[token])
    with caplog.at_level(logging.DEBUG):
        client.post(path, data=b"not json", content_type="application/json")
        client.get(path)
        client.post(path[:-2] + "x/", data=b"{}", content_type="application/json")

    assert caplog.records  # the malformed body was logged, without the path
    assert not [entry for entry in caplog.records if token[:-1] in entry.getMessage() or token in str(entry.args)]


# -- what fetched events change -----------------------------------------------------------------------------------


def test_acceptance_flows_back(credly, issued, notify):
    credly.set_award_state(issued.external_id, AwardState.ACCEPTED)

    assert notify() == 200

    row = BadgeIssuance.objects.get(pk=issued.pk)
    assert (row.state, row.provider_state) == (S.ISSUED, "accepted")
    assert row.awards.get().provider_state == "accepted"
    assert row.audit_entries.last().message == "the learner accepted the badge at the provider"
    assert row.audit_entries.last().actor == "webhook:badge.state.changed"
    assert record(credly.events()[-1]["id"]).status == St.DONE


def test_privacy_flows_back(credly, issued, notify):
    credly.server.set_badge_privacy(org(credly), issued.external_id, public=False)

    notify()

    row = BadgeIssuance.objects.get(pk=issued.pk)
    assert (row.state, row.provider_public) == (S.ISSUED, False)
    assert row.audit_entries.last().message == "the badge is private at the provider"


def test_rejection_makes_the_row_rejected_and_later_events_issue_nothing(
    credly, issued, learner, notify, deliver, work_queue
):
    credly.set_award_state(issued.external_id, AwardState.REJECTED)
    notify()
    assert BadgeIssuance.objects.get(pk=issued.pk).state == S.REJECTED

    for passing in (False, True):  # failing then passing again, as grades are recomputed
        deliver(send.send_passing_status, learner, COURSE, passing)
        deliver(send.send_grade, learner, COURSE, 0.95)
        deliver(send.send_certificate_created, learner, COURSE)
        deliver(work_queue.run)
    deliver(api.redrive, inline=True)
    api.check_drift()

    row = BadgeIssuance.objects.get(pk=issued.pk)
    assert (row.state, row.award_number) == (S.REJECTED, 1)
    assert len(credly.all_awards()) == 1
    assert len(credly.requests_for("issue")) == 1


@pytest.mark.parametrize("how", ["revoked", "expired", "replaced", "deleted"])
def test_a_badge_taken_back_at_credly_is_revoked_by_the_provider(credly, issued, notify, how):
    if how == "deleted":
        credly.set_award_state(issued.external_id, AwardState.DELETED)
    else:
        credly.server.set_badge_state(org(credly), issued.external_id, how)

    notify()

    row = BadgeIssuance.objects.get(pk=issued.pk)
    assert (row.state, row.revoked_by, row.provider_state) == (S.REVOKED, RevokedBy.PROVIDER, how)
    assert row.awards.get().status == "gone"


def test_a_forged_event_id_changes_nothing(credly, issued, notify):
    assert notify(credly.events()[-1], id="0f5e2b1a-forged") == 200

    assert record("0f5e2b1a-forged").status == St.NOT_FOUND
    assert BadgeIssuance.objects.get(pk=issued.pk).state == S.ISSUED
    assert credly.server.requests_to("GET", r"/events/0f5e2b1a-forged$")


def test_only_the_fetched_event_counts_never_what_the_body_claims(credly, issued, notify):
    credly.set_award_state(issued.external_id, AwardState.ACCEPTED)

    notify(event_type="badge.deleted", badge={"id": issued.external_id, "state": "revoked"}, state="revoked")

    row = BadgeIssuance.objects.get(pk=issued.pk)
    assert (row.state, row.provider_state) == (S.ISSUED, "accepted")


def test_a_replayed_notification_changes_nothing(credly, issued, notify):
    credly.set_award_state(issued.external_id, AwardState.ACCEPTED)
    notify()
    audits = issued.audit_entries.count()
    fetches = len(credly.server.requests_to("GET", r"/events/"))

    assert notify() == 200
    assert notify() == 200

    assert issued.audit_entries.count() == audits
    assert len(credly.server.requests_to("GET", r"/events/")) == fetches
    assert ProviderEvent.objects.count() == 1


def test_deliveries_out_of_order_keep_the_newest_news(credly, issued, notify):
    credly.set_award_state(issued.external_id, AwardState.ACCEPTED)
    time.sleep(0.005)  # Credly's event times have millisecond precision
    credly.server.set_badge_privacy(org(credly), issued.external_id, public=False)
    accepted, private = credly.events()[-2:]

    notify(private)
    notify(accepted)  # older: the badge was still public then

    row = BadgeIssuance.objects.get(pk=issued.pk)
    assert (row.provider_state, row.provider_public) == ("accepted", False)
    assert record(accepted["id"]).result.endswith("older than the news already applied")


def test_a_row_held_by_a_worker_waits_and_the_redrive_applies_the_event_later(credly, issued, notify, deliver):
    BadgeIssuance.objects.filter(pk=issued.pk).update(
        lease_token="other", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    credly.set_award_state(issued.external_id, AwardState.ACCEPTED)
    notify()
    event = record(credly.events()[-1]["id"])
    assert (event.status, event.attempts) == (St.WAITING, 0)

    BadgeIssuance.objects.filter(pk=issued.pk).update(lease_token="", lease_expires_at=None)
    ProviderEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    assert deliver(api.redrive, inline=True).provider_events == 1

    assert record(event.event_id).status == St.DONE
    assert BadgeIssuance.objects.get(pk=issued.pk).provider_state == "accepted"


def test_a_fetch_that_fails_is_retried_until_credly_answers(credly, issued, notify, deliver, settings):
    settings.BADGES_BRIDGE_MAX_ATTEMPTS = 3
    credly.set_award_state(issued.external_id, AwardState.ACCEPTED)
    credly.server.inject("GET", r"/events/", "status", status=503, times=2)
    notify()
    event_id = credly.events()[-1]["id"]
    assert (record(event_id).status, record(event_id).attempts) == (St.WAITING, 1)

    for _ in range(2):
        ProviderEvent.objects.filter(event_id=event_id).update(next_attempt_at=timezone.now())
        deliver(api.redrive, inline=True)

    assert (record(event_id).status, record(event_id).attempts) == (St.DONE, 3)
    assert BadgeIssuance.objects.get(pk=issued.pk).provider_state == "accepted"


def test_a_lost_fetch_task_is_queued_again_by_the_redrive(credly, issued, account, deliver, settings):
    credly.set_award_state(issued.external_id, AwardState.ACCEPTED)
    event_id = credly.events()[-1]["id"]
    api.receive_provider_event(account.pk, event_id)  # recorded, but its task never reached a worker
    settings.BADGES_BRIDGE_REDRIVE_GRACE_SECONDS = 0

    assert deliver(api.redrive, inline=True).provider_events == 1
    assert BadgeIssuance.objects.get(pk=issued.pk).provider_state == "accepted"


def test_an_unauthorised_fetch_fails_for_an_operator(credly, issued, notify):
    credly.server.token_expired = True
    credly.server.set_badge_state(org(credly), issued.external_id, "accepted")

    notify()

    event = record(credly.events()[-1]["id"])
    assert event.status == St.FAILED
    assert "401" in event.result


def test_events_of_badges_no_row_holds_and_other_types_are_recorded_and_ignored(credly, issued, notify):
    credly.inject(
        "any", "status", status=200, body={"data": {"id": "n1", "event_type": "pending_badge_notification.sent"}}
    )
    notify(credly.events()[-1], id="n1")

    assert record("n1").status == St.DONE
    assert record("n1").result == "ignored: nothing to do for pending_badge_notification.sent"
    assert BadgeIssuance.objects.get(pk=issued.pk).audit_entries.count() == issued.audit_entries.count()


def test_handled_records_are_pruned_after_their_retention(credly, issued, notify, deliver, settings):
    notify()
    ProviderEvent.objects.update(received_at=timezone.now() - timedelta(days=31))
    settings.BADGES_BRIDGE_PROVIDER_EVENT_RETENTION_DAYS = 30

    deliver(api.redrive, inline=True)

    assert not ProviderEvent.objects.exists()


# -- templates ------------------------------------------------------------------------------------------------------


def test_a_template_created_at_credly_is_synced(credly, account, notify):
    template_id = credly.seed_template("New at Credly")

    notify()

    template = BadgeTemplate.objects.get(external_id=template_id)
    assert (template.name, template.state, template.account_id) == ("New at Credly", "active", account.pk)
    assert record(credly.events()[-1]["id"]).result == f"template {template.pk} created (active)"


def test_a_template_changed_at_credly_is_synced(credly, badge, notify, learner, deliver, work_queue):
    credly.server.set_template_state(org(credly), badge.template.external_id, "archived")

    notify()

    assert BadgeTemplate.objects.get(pk=badge.template_id).state == "archived"
    deliver(send.send_passing_status, learner, COURSE, True)  # an archived template issues nothing
    assert not BadgeIssuance.objects.exists()


def test_a_template_deleted_at_credly_disables_its_badges_and_tells_staff(credly, badge, notify, caplog):
    other_course = make_course_badge(badge.template, "course-v1:Org+Other+2026")
    with caplog.at_level(logging.WARNING, logger="badges_bridge"):
        credly.server.delete_template(org(credly), badge.template.external_id)
        notify()

    assert BadgeTemplate.objects.get(pk=badge.template_id).state == "missing"
    assert not CourseBadge.objects.filter(pk__in=[badge.pk, other_course.pk], enabled=True).exists()
    notice = OperatorNotice.objects.get()
    assert (notice.template_id, notice.account_id) == (badge.template_id, badge.template.account_id)
    assert "no longer exists at the provider" in notice.message
    assert str(COURSE) in notice.message
    assert "course-v1:Org+Other+2026" in notice.message
    assert "2 course badge(s) disabled" in caplog.text


def test_a_full_sync_that_misses_a_template_also_disables_its_badges(credly, badge):
    credly.server.delete_template(org(credly), badge.template.external_id)

    api.sync_account_templates(badge.template.account_id)

    assert CourseBadge.objects.get(pk=badge.pk).enabled is False
    assert OperatorNotice.objects.count() == 1
    api.sync_account_templates(badge.template.account_id)  # already missing: no second notice
    assert OperatorNotice.objects.count() == 1


# -- the drift check and the ledger still agree -------------------------------------------------------------------


def test_the_drift_check_leaves_a_row_held_by_a_worker_for_its_next_run(credly, issued):
    credly.set_award_state(issued.external_id, AwardState.DELETED)
    BadgeIssuance.objects.filter(pk=issued.pk).update(
        lease_token="other", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert api.check_drift() == {issued.course_badge.template.account.name: 0}

    BadgeIssuance.objects.filter(pk=issued.pk).update(lease_token="", lease_expires_at=None)
    assert api.check_drift() == {issued.course_badge.template.account.name: 1}
    assert BadgeIssuance.objects.get(pk=issued.pk).state == S.REVOKED


def test_provider_news_about_a_badge_no_row_holds_is_not_current(account):
    result = ledger.record_provider_badge(account.pk, "unknown-badge", AwardState.REVOKED, "test")

    assert result.outcome == ledger.ProviderUpdate.NOT_CURRENT


# -- the admin ------------------------------------------------------------------------------------------------------


def _client_with(client, django_user_model, *codenames):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("operator", "operator@example.com", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def test_the_account_page_shows_the_webhook_url_but_the_list_does_not(client, django_user_model, account, accredible):
    client = _client_with(client, django_user_model, "view_provideraccount")
    other = make_account(accredible)
    page = client.get(reverse("admin:badges_bridge_provideraccount_change", args=[account.pk])).content.decode()
    listing = client.get(reverse("admin:badges_bridge_provideraccount_changelist")).content.decode()
    accredible_page = client.get(
        reverse("admin:badges_bridge_provideraccount_change", args=[other.pk])
    ).content.decode()

    assert webhooks.webhook_url(account) in page
    assert account.get_webhook_token() not in listing
    assert other.get_webhook_token() not in accredible_page
    assert "this provider sends no notifications" in accredible_page


def test_rotating_the_webhook_url_needs_the_change_permission(client, django_user_model, account):
    old = account.get_webhook_token()
    url = reverse("admin:badges_bridge_provideraccount_changelist")
    viewer = _client_with(client, django_user_model, "view_provideraccount")
    viewer.post(url, {"action": "rotate_webhook_token", "index": 0, "_selected_action": [account.pk]})
    account.refresh_from_db()
    assert account.get_webhook_token() == old

    from django.contrib.auth.models import Permission

    viewer.session.flush()
    editor = django_user_model.objects.get(username="operator")
    editor.user_permissions.add(Permission.objects.get(codename="change_provideraccount"))
    client.force_login(editor)
    response = client.post(
        url, {"action": "rotate_webhook_token", "index": 0, "_selected_action": [account.pk]}, follow=True
    )
    account.refresh_from_db()
    assert account.get_webhook_token() != old
    assert "new webhook URL; open the account to copy it" in response.content.decode()
    assert account.get_webhook_token() not in response.content.decode()


def test_notifications_and_notices_are_listed_read_only(client, django_user_model, credly, badge, notify):
    credly.server.delete_template(org(credly), badge.template.external_id)
    notify()
    client = _client_with(client, django_user_model, "view_providerevent", "view_operatornotice")

    events = client.get(reverse("admin:badges_bridge_providerevent_changelist")).content.decode()
    notices = client.get(reverse("admin:badges_bridge_operatornotice_changelist")).content.decode()

    assert "badge_template.deleted" in events
    assert "no longer exists at the provider" in notices
    assert client.get(reverse("admin:badges_bridge_providerevent_add")).status_code == 403
