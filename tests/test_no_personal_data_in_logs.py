"""A full run of the plugin, with every log record captured: no e-mail address, name or secret token in any."""

import base64
import logging
import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
from django.urls import reverse
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, compat, webhooks
from badges_bridge.models import BadgeIssuance, ProviderCleanup, ProviderEvent, RevokePolicy
from badges_bridge.providers.base import AwardState
from badges_bridge.providers.http import RedactEmailsFilter
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Logs+2026")
CERT_COURSE = CourseKey.from_string("course-v1:Org+LogsCert+2026")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def people(django_user_model):
    return [
        django_user_model.objects.create_user(
            username=f"quillon{n}", email=f"zyxwa.qorbel{n}@example.org", first_name="Zyxwa", last_name=f"Qorbel{n}"
        )
        for n in range(3)
    ]


def secrets_of(people, accounts) -> list[str]:
    """Every value that must never be logged."""
    values = []
    for person in people:
        values += [person.email, person.username, person.first_name, person.last_name, person.get_full_name()]
    for account in accounts:
        token = account.get_token()
        values += [token, base64.b64encode(f"{token}:".encode()).decode(), account.get_webhook_token()]
    return values


def test_a_full_run_logs_no_personal_data_or_token(
    credly, accredible, people, deliver, work_queue, client, caplog, settings
):
    caplog.set_level(logging.DEBUG)  # every logger, every level
    settings.BADGES_BRIDGE_MAX_ATTEMPTS = 2
    credly_account, accredible_account = make_account(credly), make_account(accredible)
    passed = make_course_badge(
        make_template(credly_account, credly), COURSE, revoke_policy=RevokePolicy.CRITERION_UNMET
    )
    make_course_badge(make_template(accredible_account, accredible), CERT_COURSE, criterion="certificate")
    first, second, third = people

    # Events through the receivers, issues at both providers, a transient and a permanent failure.
    credly.inject("issue", "status", status=503)
    accredible.inject("issue", "status", status=422, body={"errors": f"{third.email} is not allowed"})
    for person in people:
        deliver(send.send_passing_status, person, COURSE, True)
        deliver(send.send_certificate_created, person, CERT_COURSE)
    deliver(work_queue.run)
    deliver(handlers_malformed_event)

    # The provider's state flows back: accepted, private, rejected, a forged and a malformed notification.
    credly_ids = dict(BadgeIssuance.objects.filter(course_badge=passed).values_list("user_id", "external_id"))

    def post(url, body):
        return deliver(
            client.post, url.removeprefix("http://lms.example.com"), data=body, content_type="application/json"
        ).status_code

    url = webhooks.webhook_url(credly_account)
    credly.set_award_state(credly_ids[first.pk], AwardState.ACCEPTED)
    credly.notify(url, post=post)
    credly.server.set_badge_privacy(credly.organization().id, credly_ids[first.pk], public=False)
    credly.notify(url, post=post)
    credly.set_award_state(credly_ids[second.pk], AwardState.REJECTED)
    credly.notify(url, post=post)
    credly.notify(url, post=post, id="forged-id")
    post(url, b"{not json")
    client.get(url.removeprefix("http://lms.example.com"))
    client.post(reverse("badges_bridge:provider-webhook", args=["wrong"]), data=b"{}", content_type="application/json")

    # A revoke by the policy, the drift check, the redrive, a token that stopped working.
    deliver(send.send_passing_status, first, COURSE, False)
    deliver(work_queue.run)
    accredible.set_award_state(
        BadgeIssuance.objects.filter(user=first).exclude(external_id="").last().external_id, AwardState.DELETED
    )
    deliver(api.check_drift)
    deliver(api.redrive, inline=True)
    credly.server.token_expired = True
    deliver(api.check_accounts)
    credly.server.token_expired = False

    # A learner retires while Credly is down; the clean-up follows once it is back.
    credly.inject("revoke", "status", status=503, times=None)
    deliver(compat.USER_RETIRE_LMS_CRITICAL.send, sender=None, user=third)
    credly.server.faults.clear()
    ProviderCleanup.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    deliver(api.redrive, inline=True)
    assert not ProviderCleanup.objects.exists()
    assert ProviderEvent.objects.filter(status="not_found").count() == 1

    records = caplog.records
    logged = " | ".join(record.getMessage() for record in records)
    for expected in (
        "issue of issuance",  # a failed attempt
        "malformed notification",
        "is unknown at account",  # the forged event id
        "learner retirement:",
        "clean-up",  # the clean-up failed while Credly was down
        "recipient_email::<e-mail>",  # urllib3's request line, with the address removed
        "ignored event",  # the malformed learning event
    ):
        assert expected in logged, expected
    forbidden = secrets_of(people, [credly_account, accredible_account])
    for record in records:
        text = record.getMessage() + (
            caplog.handler.formatter.formatException(record.exc_info) if record.exc_info else ""
        )
        for form in (text, unquote(text)):
            assert not EMAIL.search(form), (record.name, form)
            leaked = [value for value in forbidden if value in form]
            assert not leaked, (record.name, leaked, form)


def handlers_malformed_event() -> None:
    """An event the receivers cannot read: recorded and logged."""
    from badges_bridge.signals import handlers

    handlers.on_course_passing_status(course_passing_status=None)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        (
            "/badges?filter=recipient_email%3A%3Aada%40example.com&sort=x",
            "/badges?filter=recipient_email::<e-mail>&sort=x",
        ),
        ("/badges?filter=recipient_email::ada@example.com", "/badges?filter=recipient_email::<e-mail>"),
        ("/badges?page=2&filter=state%3A%3Aaccepted", "/badges?page=2&filter=state%3A%3Aaccepted"),
    ],
)
def test_request_lines_lose_their_email_addresses(arg, expected):
    record = logging.LogRecord("urllib3.connectionpool", logging.DEBUG, "x", 1, '"%s %s" %s', ("GET", arg, 200), None)

    assert RedactEmailsFilter().filter(record)
    assert record.args == ("GET", expected, 200)
    assert RedactEmailsFilter in {type(item) for item in logging.getLogger("urllib3.connectionpool").filters}
