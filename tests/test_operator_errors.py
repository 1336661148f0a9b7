"""Errors an operator can act on, learner-facing statuses, and the ledger's qualification and issue times."""

import socket
import time

import pytest
import requests
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api
from badges_bridge.causes import NEXT_STEPS, ErrorCause
from badges_bridge.exceptions import (
    AuthenticationError,
    BadgesBridgeError,
    NotFoundError,
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from badges_bridge.models import BadgeIssuance, IssuanceState, Operation
from badges_bridge.providers.http import HttpClient
from badges_bridge.testing import events as send
from badges_bridge.testing.server import FakeResponse, FakeServer
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Errors+2026")


class Refusals(FakeServer):
    @FakeServer.route("GET", r"/denied")
    def denied(self, request):
        return FakeResponse(401, {"message": "Unauthorized"})

    @FakeServer.route("GET", r"/missing")
    def missing(self, request):
        return FakeResponse(404, {"message": "Organization not found"})

    @FakeServer.route("GET", r"/busy")
    def busy(self, request):
        return FakeResponse(503, "<html>down</html>")

    @FakeServer.route("GET", r"/slow-down")
    def slow_down(self, request):
        return FakeResponse(429, {"message": "Too many"}, headers={"Retry-After": "30"})

    @FakeServer.route("GET", r"/invalid")
    def invalid(self, request):
        return FakeResponse(422, {"message": "Badge template is archived"})

    @FakeServer.route("GET", r"/sleepy")
    def sleepy(self, request):
        time.sleep(0.5)
        return FakeResponse(200, {})


@pytest.fixture(scope="module")
def server():
    with Refusals() as running:
        yield running


def client_for(base_url: str, timeout: float = 2.0) -> HttpClient:
    return HttpClient(
        base_url, auth=requests.auth.HTTPBasicAuth("t", ""), timeout=(timeout, timeout), provider_name="Credly"
    )


#: (path, error class, what the message says, the next step it gives, the cause recorded)
REFUSALS = [
    ("denied", AuthenticationError, "refused the API token on GET denied (HTTP 401): Unauthorized",
     "Enter a valid API token", "token_refused"),
    ("missing", NotFoundError, "found nothing at GET missing (HTTP 404)",
     "Check the account's organization id", "not_found"),
    ("busy", TransientProviderError, "failed on GET busy (HTTP 503): (HTML error page)",
     "the work is retried automatically", "unavailable"),
    ("slow-down", RateLimitedError, "asked to slow down on GET slow-down",
     "retried automatically in 30s", "unavailable"),
    ("invalid", PermanentProviderError, "refused GET invalid (HTTP 422): Badge template is archived",
     "The provider's message says why", "refused"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "error", "words", "next_step", "cause"), REFUSALS)
def test_provider_errors_name_the_provider_its_host_what_failed_and_what_to_do(
    server, path, error, words, next_step, cause
):
    host = server.base_url.split("//")[1].rstrip("/")
    with pytest.raises(error) as raised:
        client_for(server.base_url).request("GET", path)
    text = str(raised.value)
    assert text.startswith(f"Credly ({host}) ")
    assert words in text
    assert next_step in text
    assert raised.value.cause == cause


def test_an_unreachable_provider_names_its_host_and_the_next_step():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientProviderError) as raised:
        client_for(f"http://127.0.0.1:{port}/v1/").request("GET", "organizations/abc?email=ada@example.com")
    text = str(raised.value)
    assert text.startswith(f"Could not reach Credly (127.0.0.1:{port}) (GET organizations/abc): the connection failed")
    assert "check the account's API base URL and run Test connection" in text
    assert "ada@example.com" not in text


def test_a_provider_that_does_not_answer_in_time_says_so(server):
    with pytest.raises(TransientProviderError) as raised:
        client_for(server.base_url, timeout=0.1).request("GET", "sleepy")
    assert "did not answer GET sleepy in time" in str(raised.value)
    assert "retried automatically" in str(raised.value)


def test_the_default_https_port_is_not_repeated():
    assert client_for("https://api.credly.com/v1/").where == "Credly (api.credly.com)"
    assert client_for("https://api.credly.com:8443/v1/").where == "Credly (api.credly.com:8443)"


def test_every_cause_has_a_next_step():
    assert set(NEXT_STEPS) == set(ErrorCause.values)
    assert BadgesBridgeError("x").cause == ErrorCause.UNEXPECTED


# -- learner statuses ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "operation", "status"),
    [
        (IssuanceState.PENDING, Operation.ISSUE, "processing"),
        (IssuanceState.FAILED, Operation.ISSUE, "processing"),
        (IssuanceState.DEAD, Operation.ISSUE, "failed"),
        (IssuanceState.FAILED, Operation.REVOKE, "revoked"),
        (IssuanceState.DEAD, Operation.REVOKE, "revoked"),
        (IssuanceState.ISSUED, Operation.ISSUE, "issued"),
    ],
)
def test_learners_see_whether_a_badge_is_on_its_way_or_could_not_be_issued(
    client, credly, learner, state, operation, status
):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    BadgeIssuance.objects.create(
        user=learner,
        course_badge=badge,
        state=state,
        operation=operation,
        last_error="Credly (api.credly.com) refused POST organizations/secret-org/badges (HTTP 422)",
    )
    client.force_login(learner)

    body = client.get("/api/badges_bridge/v1/badges/").json()

    [result] = body["results"]
    assert result["status"] == status
    assert result["status_text"]
    assert "secret-org" not in str(body)
    if status == "failed":
        assert result["status_text"] == (
            "We could not issue this badge. The site's support team has been told and will look into it."
        )


@pytest.mark.django_db
def test_rows_that_only_record_an_unmet_criterion_are_not_shown_to_learners(client, credly, learner):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.NOT_MET)
    assert api.learner_badges(learner.pk) == []


# -- qualified at, issued at ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_row_is_issued_only_once_the_provider_confirms_and_each_award_has_its_own_issue_time(
    credly, learner, receivers, django_capture_on_commit_callbacks, settings
):
    settings.BADGES_BRIDGE_RETRY_BASE_SECONDS = settings.BADGES_BRIDGE_RETRY_MAX_SECONDS = 60
    make_course_badge(make_template(make_account(credly), credly), COURSE, revoke_policy="criterion_unmet")
    credly.inject("issue", "status", status=503, times=1)
    with django_capture_on_commit_callbacks(execute=True):
        send.send_passing_status(learner, COURSE, True)
    row = BadgeIssuance.objects.get(user=learner)
    assert row.state == IssuanceState.FAILED
    assert row.qualified_at is not None
    assert row.issued_at is None  # qualified, not issued
    BadgeIssuance.objects.filter(pk=row.pk).update(next_attempt_at=row.qualified_at)
    api.redrive(inline=True)
    row.refresh_from_db()
    assert row.state == IssuanceState.ISSUED
    first_issue = row.issued_at
    assert first_issue >= row.qualified_at

    with django_capture_on_commit_callbacks(execute=True):
        send.send_passing_status(learner, COURSE, False)
    row.refresh_from_db()
    assert (row.state, row.issued_at) == (IssuanceState.REVOKED, first_issue)
    with django_capture_on_commit_callbacks(execute=True):
        send.send_passing_status(learner, COURSE, True)
    row.refresh_from_db()
    assert row.state == IssuanceState.ISSUED
    assert row.issued_at > first_issue  # the new award's own time


# -- the migration -------------------------------------------------------------------------------------------------

BEFORE = [("badges_bridge", "0005_award_requests")]
AFTER = [("badges_bridge", "0006_admin_console")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_qualification_time_and_derives_issue_times_and_causes(django_user_model):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    try:
        account = old.get_model("badges_bridge", "ProviderAccount").objects.create(
            provider="credly", name="Credly", api_base_url="https://api.credly.com/v1/"
        )
        template = old.get_model("badges_bridge", "BadgeTemplate").objects.create(
            account=account, external_id="t1", name="T"
        )
        badge = old.get_model("badges_bridge", "CourseBadge").objects.create(
            course_key="course-v1:Org+Mig+2026", template=template
        )
        rows = old.get_model("badges_bridge", "BadgeIssuance")
        qualified = "2026-01-02T03:04:05+00:00"
        confirmed = "2026-01-02T03:05:00+00:00"
        cases = {
            "issued": ("issued", "", confirmed),
            "no_email": ("dead", "The learner has no e-mail address", None),
            "token_refused": ("failed", "Credly refused GET organizations/x (HTTP 401): no", None),
            "worker_lost": ("dead", "gave up after 8 attempts: the worker never reported back", None),
            "unavailable": ("dead", "gave up after 8 attempts: Credly failed on POST badges (HTTP 503)", None),
            "unexpected": ("dead", "RuntimeError: boom", None),
        }
        for number, (state, error, confirmed_at) in enumerate(cases.values()):
            user = django_user_model.objects.create_user(username=f"m{number}")
            rows.objects.create(
                user_id=user.pk,
                course_badge=badge,
                state=state,
                last_error=error,
                issued_at=qualified,
                confirmed_at=confirmed_at,
            )

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps.get_model("badges_bridge", "BadgeIssuance")
        migrated = list(new.objects.order_by("id"))
        assert [row.error_cause for row in migrated] == ["", *list(cases)[1:]]
        assert all(row.qualified_at.isoformat() == qualified for row in migrated)
        assert migrated[0].issued_at.isoformat() == confirmed
        assert all(row.issued_at is None for row in migrated[1:])
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
