"""The provider conformance suite: what every badge provider client must do.

The tests are written only against :class:`~badges_bridge.providers.base.BaseProvider`
and :class:`~badges_bridge.testing.harness.ProviderHarness`, and run over real
HTTP against the provider's fake. They cover template paging, account
isolation, idempotent issuing (duplicates, lost answers), revocation in both
modes, reading one template, the fetch-back of notifications where the provider
sends them, and the mapping of every failure onto the exception hierarchy.

Running it for a provider
-------------------------
1. Register the provider class in ``BADGES_BRIDGE_PROVIDERS`` and its harness
   (a :class:`ProviderHarness` subclass over its fake) in
   ``BADGES_BRIDGE_TEST_HARNESSES``, both under the same kind.
2. In a test module, provide a ``harness`` fixture and subclass the suite::

       from badges_bridge.testing.conformance import ProviderConformanceTests, harness_fixture

       harness = harness_fixture(["mykind"])  # or harness_fixture() for every registered kind


       class TestMyProviderConformance(ProviderConformanceTests):
           pass

   Any fixture named ``harness`` that yields a started harness works too; the
   suite resets it before each test.

A harness whose provider has no such state (Accredible groups are never
archived) raises ValueError from ``seed_template(state=...)``; the tests that
need that state are then skipped.

Optional harness knob: a ``set_page_size(size)`` method that makes the fake
serve lists ``size`` items a page until the next ``reset()``. With it, the
paging tests use small pages and check in the journal that several pages were
requested (template lists through the ``list_templates`` operation, badge
lists through ``find``); without it they seed more items than a default page.

Provider-specific tests can build their learners and requests with
``recipient(number, email)`` and ``issue_request(template_id, learner, **fields)``;
the suite's own requests add ``**COURSE`` (a course and its evidence).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from badges_bridge.exceptions import (
    AuthenticationError,
    ConfigurationError,
    DuplicateAwardError,
    LeaseLostError,
    NotFoundError,
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
    WebhookPayloadError,
)
from badges_bridge.providers import get_provider
from badges_bridge.providers.base import (
    Award,
    AwardState,
    BaseProvider,
    Evidence,
    IssueRequest,
    Recipient,
    RevokeMode,
)
from badges_bridge.testing.harness import ProviderHarness, get_harness_class, harness_paths

ISSUED_AT = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
#: Templates or badges seeded to span several pages when the harness has no page-size knob.
ITEMS_BEYOND_ONE_PAGE = 60
SMALL_PAGE = 2
UNKNOWN_ID = "999999999"
HTML_ERROR = "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Server error</h1></body></html>"
COURSE_URL = "https://lms.example.com/courses/course-v1:Org+C101+2025"
#: The course and evidence the suite's requests carry: ``issue_request(template_id, learner, **COURSE)``.
COURSE: dict[str, Any] = {
    "course_name": "Conformance 101",
    "course_url": COURSE_URL,
    "evidence": (Evidence("Course", "Passed Conformance 101", COURSE_URL), Evidence("Grade", "Final grade 92%")),
}


def load_harness_class(kind: str) -> type[ProviderHarness]:
    """The harness class of ``kind``; skips the test when the harness's own module does not exist.

    Any other import problem (a broken harness, a missing dependency of it) fails loudly.
    """
    module_name = harness_paths()[kind].rpartition(".")[0]
    try:
        return get_harness_class(kind)
    except ModuleNotFoundError as err:
        if not err.name or not (module_name == err.name or module_name.startswith(f"{err.name}.")):
            raise
        pytest.skip(f"no harness module {module_name} for provider kind {kind!r}")


def harness_fixture(kinds: Iterable[str] | None = None) -> Callable[..., Any]:
    """A module-scoped ``harness`` fixture, parametrised over provider kinds.

    ``kinds`` defaults to every kind registered in the harness registry. Each
    harness is started once per module and stopped at its end.
    """
    params = sorted(kinds if kinds is not None else harness_paths())

    @pytest.fixture(scope="module", params=params, ids=params, name="harness")
    def harness(request: pytest.FixtureRequest):
        with load_harness_class(request.param)() as running:
            yield running

    return harness


def recipient(number: int = 1, email: str = "") -> Recipient:
    """A distinct learner per number, at ``email`` when given."""
    return Recipient(
        email=email or f"learner{number}@example.com",
        first_name="Ada",
        last_name=f"Lovelace{number}",
        earner_id=f"openedx-user-{number}",
    )


def issue_request(template_id: str, learner: Recipient | None = None, **extra: Any) -> IssueRequest:
    """A request for ``learner`` (default: ``recipient()``) issued at ISSUED_AT; ``extra`` sets the other fields."""
    return IssueRequest(
        template_id=template_id,
        recipient=learner if learner is not None else recipient(),
        issued_at=ISSUED_AT,
        **extra,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``condition`` until it holds (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


class CallCounter:
    """A throttle (or heartbeat) hook that counts its calls, notes them in ``log``, and can refuse."""

    def __init__(self, refuse: bool = False, *, name: str = "throttle", log: list[str] | None = None):
        self.calls = 0
        self.refuse = refuse
        self.name = name
        self.log = log if log is not None else []

    def __call__(self) -> None:
        self.calls += 1
        self.log.append(self.name)
        if self.refuse:
            if self.name == "heartbeat":
                raise LeaseLostError("another worker took the row")
            raise RateLimitedError("client-side limit reached", retry_after=1.0)


class ProviderConformanceTests:
    """Behaviour every provider client must show against its fake. Needs a ``harness`` fixture."""

    # -- fixtures and helpers ------------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _fresh_harness(self, harness: ProviderHarness) -> None:
        harness.reset()

    @staticmethod
    def make_provider(harness: ProviderHarness, account: str = "main", **overrides: Any) -> BaseProvider:
        """A client of the provider under test, bound to one of the fake's accounts."""
        return get_provider(harness.kind, harness.account_config(account, **overrides))

    @pytest.fixture
    def provider(self, harness: ProviderHarness) -> BaseProvider:
        """A client of the main account."""
        return self.make_provider(harness)

    @pytest.fixture
    def template_id(self, harness: ProviderHarness) -> str:
        """An active template that refuses duplicates."""
        return harness.seed_template("Conformance Badge")

    @staticmethod
    def small_pages(harness: ProviderHarness) -> bool:
        """Switch the fake to small pages when it can; tell whether it did."""
        set_page_size = getattr(harness, "set_page_size", None)
        if set_page_size is None:
            return False
        set_page_size(SMALL_PAGE)
        return True

    @staticmethod
    def seed_or_skip(harness: ProviderHarness, name: str, **options: Any) -> str:
        """Seed a template; skip the test when the provider has no such kind of template."""
        try:
            return harness.seed_template(name, **options)
        except ValueError as err:
            pytest.skip(f"{harness.kind}: {err}")

    @staticmethod
    def issue_or_adopt(provider: BaseProvider, request: IssueRequest) -> Award | None:
        """Issue; None when the provider reports a duplicate."""
        try:
            return provider.issue(request)
        except DuplicateAwardError:
            return None

    # -- connection and templates --------------------------------------------------------------------
    def test_check_connection_describes_the_account(self, provider: BaseProvider):
        description = provider.check_connection()
        assert isinstance(description, str)
        assert description.strip()

    def test_iter_templates_follows_every_page(self, harness: ProviderHarness, provider: BaseProvider):
        paged = self.small_pages(harness)
        count = 5 if paged else ITEMS_BEYOND_ONE_PAGE
        names = {f"Badge {number:02d}" for number in range(count)}
        ids = {harness.seed_template(name) for name in sorted(names)}

        templates = list(provider.iter_templates())

        assert {template.external_id for template in templates} == ids
        assert {template.name for template in templates} == names
        if paged:
            assert len(harness.requests_for("list_templates")) >= 3

    def test_archived_templates_are_listed_with_their_state(self, harness: ProviderHarness, provider: BaseProvider):
        active = harness.seed_template("Current Badge")
        archived = self.seed_or_skip(harness, "Retired Badge", state="archived")

        states = {template.external_id: template.state for template in provider.iter_templates()}

        assert states == {active: "active", archived: "archived"}

    def test_allow_duplicates_flag_is_reported(self, harness: ProviderHarness, provider: BaseProvider):
        strict = harness.seed_template("Once Only")
        repeatable = harness.seed_template("Many Times", allow_duplicates=True)

        flags = {template.external_id: template.allow_duplicates for template in provider.iter_templates()}

        assert flags == {strict: False, repeatable: True}

    def test_get_template_reads_one_template(self, harness: ProviderHarness, provider: BaseProvider):
        wanted = harness.seed_template("Read Alone")
        harness.seed_template("Another One")

        template = provider.get_template(wanted)

        assert (template.external_id, template.name, template.state) == (wanted, "Read Alone", "active")
        with pytest.raises(NotFoundError):
            provider.get_template(UNKNOWN_ID)

    def test_notifications_are_fetched_back_only_where_the_provider_sends_them(self, provider: BaseProvider):
        if not provider.supports_webhooks:
            with pytest.raises(ConfigurationError):
                provider.get_event(UNKNOWN_ID)
            with pytest.raises(ConfigurationError):
                type(provider).parse_notification(b"{}")
            return
        with pytest.raises(NotFoundError):  # a forged or mistaken event id
            provider.get_event(UNKNOWN_ID)
        with pytest.raises(WebhookPayloadError):
            type(provider).parse_notification(b"not a notification")

    def test_accounts_are_isolated(self, harness: ProviderHarness, provider: BaseProvider, template_id: str):
        other = self.make_provider(harness, "other")
        other_template = harness.seed_template("Other Badge", account="other")
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))

        assert [t.external_id for t in other.iter_templates()] == [other_template]
        assert [t.external_id for t in provider.iter_templates()] == [template_id]
        assert other.find_award(template_id, recipient()) is None
        assert list(other.iter_awards([template_id])) == []
        with pytest.raises(NotFoundError):
            other.get_award(award.external_id)
        with pytest.raises(PermanentProviderError):
            other.issue(issue_request(template_id, recipient(2), **COURSE))
        assert harness.all_awards(account="other") == []

    # -- issuing -------------------------------------------------------------------------------------
    def test_issue_returns_a_live_award(self, harness: ProviderHarness, provider: BaseProvider, template_id: str):
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))

        assert award.external_id
        assert award.state.is_live
        assert award.public_url.startswith("http")
        assert award.template_id in ("", template_id)
        assert harness.award_state(award.external_id).is_live
        assert len(harness.live_awards(template_id, recipient().email)) == 1

    def test_issuing_twice_never_stores_a_second_badge(
        self, harness: ProviderHarness, provider: BaseProvider, template_id: str
    ):
        first = provider.issue(issue_request(template_id, recipient(), **COURSE))

        second = self.issue_or_adopt(provider, issue_request(template_id, recipient(), **COURSE))

        assert second is None or second.external_id == first.external_id
        found = provider.find_award(template_id, recipient())
        assert found is not None
        assert found.external_id == first.external_id
        assert len(harness.live_awards(template_id, recipient().email)) == 1
        assert harness.duplicates_created() == 0

    @pytest.mark.parametrize("fault", ["commit_then_fail", "commit_then_drop"])
    def test_badge_created_behind_a_lost_answer_is_found(
        self, harness: ProviderHarness, provider: BaseProvider, template_id: str, fault: str
    ):
        harness.inject("issue", fault, status=502, body="Bad Gateway")

        with pytest.raises(TransientProviderError):
            provider.issue(issue_request(template_id, recipient(), **COURSE))

        found = provider.find_award(template_id, recipient())
        assert found is not None
        assert found.state.is_live
        assert harness.award_state(found.external_id).is_live
        retried = self.issue_or_adopt(provider, issue_request(template_id, recipient(), **COURSE))
        assert retried is None or retried.external_id == found.external_id
        assert len(harness.live_awards(template_id, recipient().email)) == 1
        assert harness.duplicates_created() == 0

    def test_find_award_without_a_badge_is_none(self, provider: BaseProvider, template_id: str):
        provider.issue(issue_request(template_id, recipient(1), **COURSE))

        assert provider.find_award(template_id, recipient(2)) is None

    def test_get_award_returns_the_issued_badge(self, provider: BaseProvider, template_id: str):
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))

        fetched = provider.get_award(award.external_id)

        assert fetched.external_id == award.external_id
        assert fetched.state.is_live
        assert fetched.template_id in ("", template_id)

    def test_get_award_of_an_unknown_id_is_not_found(self, provider: BaseProvider):
        with pytest.raises(NotFoundError):
            provider.get_award(UNKNOWN_ID)

    def test_badge_deleted_at_the_provider_is_gone(
        self, harness: ProviderHarness, provider: BaseProvider, template_id: str
    ):
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))
        harness.set_award_state(award.external_id, AwardState.DELETED)

        with pytest.raises(NotFoundError):
            provider.get_award(award.external_id)
        assert provider.find_award(template_id, recipient()) is None

    # -- revoking ------------------------------------------------------------------------------------
    def test_revoked_badge_can_be_issued_again(
        self, harness: ProviderHarness, provider: BaseProvider, template_id: str
    ):
        first = provider.issue(issue_request(template_id, recipient(), **COURSE))

        revoked = provider.revoke(first.external_id, "Grade withdrawn")
        second = provider.issue(issue_request(template_id, recipient(), **COURSE))

        assert not revoked.state.is_live
        assert not harness.award_state(first.external_id).is_live
        assert second.state.is_live
        assert second.external_id != first.external_id
        assert provider.find_award(template_id, recipient()).external_id == second.external_id
        assert len(harness.live_awards(template_id, recipient().email)) == 1
        assert harness.duplicates_created() == 0

    def test_revoke_is_idempotent(self, harness: ProviderHarness, provider: BaseProvider, template_id: str):
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))

        first = provider.revoke(award.external_id, "Issued in error")
        second = provider.revoke(award.external_id, "Issued in error")

        assert first.state == second.state
        assert not second.state.is_live
        assert not harness.award_state(award.external_id).is_live

    def test_revoke_in_delete_mode_removes_the_badge(self, harness: ProviderHarness, template_id: str):
        provider = self.make_provider(harness, revoke_mode=RevokeMode.DELETE)
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))

        result = provider.revoke(award.external_id, "Learner asked for deletion")

        assert result.state == AwardState.DELETED
        assert harness.award_state(award.external_id) == AwardState.DELETED
        with pytest.raises(NotFoundError):
            provider.get_award(award.external_id)
        assert provider.revoke(award.external_id, "Learner asked for deletion").state == AwardState.DELETED

    def test_discard_removes_a_badge_and_is_idempotent(
        self, harness: ProviderHarness, provider: BaseProvider, template_id: str
    ):
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))

        first = provider.discard(award.external_id)
        second = provider.discard(award.external_id)

        assert not first.state.is_live
        assert not second.state.is_live
        assert not harness.award_state(award.external_id).is_live
        assert harness.live_awards(template_id, recipient().email) == []

    def test_revoked_badge_is_brought_back_or_left_alone(
        self, harness: ProviderHarness, provider: BaseProvider, template_id: str
    ):
        """reinstate: the same badge live again, or None where the provider cannot bring one back."""
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))
        provider.revoke(award.external_id, "Grade withdrawn")

        assert provider.reinstate(award.external_id, issue_request(template_id, recipient(2), **COURSE)) is None
        assert not harness.award_state(award.external_id).is_live
        back = provider.reinstate(award.external_id, issue_request(template_id, recipient(), **COURSE))

        if back is None:
            assert not harness.award_state(award.external_id).is_live
            return
        assert back.external_id == award.external_id
        assert back.state.is_live
        assert harness.award_state(award.external_id).is_live
        assert provider.find_award(template_id, recipient()).external_id == award.external_id
        assert len(harness.live_awards(template_id, recipient().email)) == 1

    def test_reinstating_a_deleted_badge_is_not_found_or_none(
        self, harness: ProviderHarness, provider: BaseProvider, template_id: str
    ):
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))
        harness.set_award_state(award.external_id, AwardState.DELETED)

        try:
            back = provider.reinstate(award.external_id, issue_request(template_id, recipient(), **COURSE))
        except NotFoundError:
            back = None
        assert back is None
        assert harness.live_awards(template_id, recipient().email) == []

    # -- listing badges ------------------------------------------------------------------------------
    def test_iter_awards_follows_pages_and_skips_other_templates(
        self, harness: ProviderHarness, provider: BaseProvider
    ):
        paged = self.small_pages(harness)
        wanted = [harness.seed_template("Wanted A"), harness.seed_template("Wanted B")]
        unwanted = harness.seed_template("Unwanted")
        per_template = 3 if paged else ITEMS_BEYOND_ONE_PAGE // 2 + 1
        expected = set()
        for offset, template in enumerate(wanted):
            for number in range(per_template):
                learner = recipient(offset * 1000 + number)
                expected.add(provider.issue(issue_request(template, learner, **COURSE)).external_id)
        provider.issue(issue_request(unwanted, recipient(1), **COURSE))
        revoked = sorted(expected)[0]
        provider.revoke(revoked, "Still held, in a revoked state")
        journal_before = len(harness.requests_for("find"))

        awards = list(provider.iter_awards(wanted))

        assert {award.external_id for award in awards} == expected
        assert len(awards) == len(expected)
        assert {award.template_id for award in awards} <= {"", *wanted}
        assert not next(award for award in awards if award.external_id == revoked).state.is_live
        assert list(provider.iter_awards([])) == []
        if paged:
            assert len(harness.requests_for("find")) - journal_before >= 3

    # -- failures ------------------------------------------------------------------------------------
    def test_bad_token_is_an_authentication_error_and_not_retried(self, harness: ProviderHarness):
        provider = self.make_provider(harness, token="not-the-right-token")

        with pytest.raises(AuthenticationError):
            provider.check_connection()
        assert len(harness.server.journal) == 1
        with pytest.raises(AuthenticationError):
            list(provider.iter_templates())

    @pytest.mark.parametrize(
        ("status", "body", "content_type"),
        [
            (500, HTML_ERROR, "text/html"),
            (502, "Bad Gateway", "text/plain"),
            (503, HTML_ERROR, "text/html; charset=utf-8"),
            (504, "upstream request timeout", "text/plain"),
        ],
    )
    def test_server_errors_are_transient(
        self, harness: ProviderHarness, provider: BaseProvider, template_id: str, status, body, content_type
    ):
        harness.inject("any", status=status, body=body, headers={"Content-Type": content_type})
        with pytest.raises(TransientProviderError) as on_read:
            provider.check_connection()

        harness.inject("issue", status=status, body=body, headers={"Content-Type": content_type})
        with pytest.raises(TransientProviderError) as on_issue:
            provider.issue(issue_request(template_id, recipient(), **COURSE))

        for error in (on_read.value, on_issue.value):
            assert error.status_code == status
            assert "<html" not in str(error).lower()
        assert harness.live_awards(template_id, recipient().email) == []

    @pytest.mark.parametrize("form", ["seconds", "http-date"])
    def test_rate_limit_carries_retry_after(self, harness: ProviderHarness, provider: BaseProvider, form: str):
        value = "7" if form == "seconds" else format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
        harness.inject("any", status=429, body="Too Many Requests", headers={"Retry-After": value})

        with pytest.raises(RateLimitedError) as caught:
            provider.check_connection()

        if form == "seconds":
            assert caught.value.retry_after == pytest.approx(7.0)
        else:
            assert 25.0 <= caught.value.retry_after <= 31.0
        assert len(harness.server.journal) == 1

    def test_rate_limit_without_retry_after(self, harness: ProviderHarness, provider: BaseProvider):
        """No header: None (the caller backs off) or the provider's documented minimum wait."""
        harness.inject("any", status=429, body="Too Many Requests")

        with pytest.raises(RateLimitedError) as caught:
            provider.check_connection()

        assert caught.value.retry_after is None or caught.value.retry_after > 0
        assert len(harness.server.journal) == 1

    def test_slow_answer_is_transient(self, harness: ProviderHarness):
        provider = self.make_provider(harness, timeout=(1.0, 0.5))
        harness.inject("any", "slow", delay=1.0)

        with pytest.raises(TransientProviderError):
            provider.check_connection()
        wait_until(lambda: len(harness.server.journal) >= 1)

    def test_dropped_connection_is_transient(self, harness: ProviderHarness, provider: BaseProvider):
        harness.inject("any", "drop")

        with pytest.raises(TransientProviderError):
            provider.check_connection()

    @pytest.mark.parametrize("problem", ["missing email", "unknown template"])
    def test_validation_error_is_permanent(
        self, harness: ProviderHarness, provider: BaseProvider, template_id: str, problem: str
    ):
        if problem == "missing email":
            request = issue_request(template_id, Recipient("", "Ada", "Lovelace", "earner-1"), **COURSE)
        else:
            request = issue_request(UNKNOWN_ID, recipient(), **COURSE)

        with pytest.raises(PermanentProviderError) as caught:
            provider.issue(request)

        assert not isinstance(caught.value, DuplicateAwardError)
        assert harness.all_awards() == []

    # -- client-side throttle ------------------------------------------------------------------------
    def test_throttle_runs_before_every_request(self, harness: ProviderHarness, template_id: str):
        throttle = CallCounter()
        provider = self.make_provider(harness, throttle=throttle)

        provider.check_connection()
        list(provider.iter_templates())
        award = provider.issue(issue_request(template_id, recipient(), **COURSE))
        provider.find_award(template_id, recipient())
        provider.get_award(award.external_id)
        provider.revoke(award.external_id, "Issued in error")
        list(provider.iter_awards([template_id]))

        assert throttle.calls == len(harness.server.journal) >= 7

    def test_throttle_refusal_sends_nothing(self, harness: ProviderHarness, template_id: str):
        provider = self.make_provider(harness, throttle=CallCounter(refuse=True))

        with pytest.raises(RateLimitedError):
            provider.issue(issue_request(template_id, recipient(), **COURSE))
        assert harness.server.journal == []

    # -- lease heartbeat ------------------------------------------------------------------------------
    def test_heartbeat_runs_before_every_request_and_before_the_throttle(
        self, harness: ProviderHarness, template_id: str
    ):
        order: list[str] = []
        heartbeat = CallCounter(name="heartbeat", log=order)
        provider = self.make_provider(harness, heartbeat=heartbeat, throttle=CallCounter(log=order))

        award = provider.issue(issue_request(template_id, recipient(), **COURSE))
        provider.find_award(template_id, recipient())
        provider.revoke(award.external_id, "Issued in error")
        provider.discard(award.external_id)

        assert heartbeat.calls == len(harness.server.journal) >= 4
        assert order == ["heartbeat", "throttle"] * heartbeat.calls

    def test_lost_lease_sends_nothing(self, harness: ProviderHarness, template_id: str):
        throttle = CallCounter()
        provider = self.make_provider(harness, heartbeat=CallCounter(refuse=True, name="heartbeat"), throttle=throttle)

        with pytest.raises(LeaseLostError):
            provider.issue(issue_request(template_id, recipient(), **COURSE))
        assert harness.server.journal == []
        assert throttle.calls == 0

    # -- bulk create (optional: providers whose bulk_size is above 0) ----------------------------------
    @pytest.fixture
    def bulk_provider(self, provider: BaseProvider) -> BaseProvider:
        """The provider under test when it declares a bulk create; the test is skipped otherwise."""
        if provider.bulk_size <= 0:
            pytest.skip(f"{provider.display_name} has no bulk create")
        return provider

    def test_bulk_create_gives_one_live_award_per_request_in_order(
        self, harness: ProviderHarness, bulk_provider: BaseProvider, template_id: str
    ):
        learners = [recipient(number) for number in range(1, 4)]

        outcomes = bulk_provider.issue_many([issue_request(template_id, learner, **COURSE) for learner in learners])

        assert [outcome.error for outcome in outcomes] == [None, None, None]
        for learner, outcome in zip(learners, outcomes, strict=True):
            assert outcome.award.state.is_live
            assert [str(award["id"]) for award in harness.live_awards(template_id, learner.email)] == [
                outcome.award.external_id
            ]
        assert len(harness.server.journal) == 1

    def test_bulk_create_refuses_duplicates_inside_the_batch_and_against_existing_badges(
        self, harness: ProviderHarness, bulk_provider: BaseProvider, template_id: str
    ):
        bulk_provider.issue(issue_request(template_id, recipient(1), **COURSE))

        outcomes = bulk_provider.issue_many(
            [issue_request(template_id, recipient(number), **COURSE) for number in (1, 2, 2)]
        )

        assert isinstance(outcomes[0].error, DuplicateAwardError)
        assert outcomes[1].award is not None
        assert outcomes[1].award.state.is_live
        assert isinstance(outcomes[2].error, DuplicateAwardError)
        assert len(harness.live_awards(template_id, recipient(1).email)) == 1
        assert len(harness.live_awards(template_id, recipient(2).email)) == 1
        assert harness.duplicates_created() == 0

    def test_bulk_create_reports_validation_errors_per_item(
        self, harness: ProviderHarness, bulk_provider: BaseProvider, template_id: str
    ):
        outcomes = bulk_provider.issue_many(
            [issue_request(template_id, recipient(1), **COURSE), issue_request(UNKNOWN_ID, recipient(2), **COURSE)]
        )

        assert outcomes[0].award is not None
        assert outcomes[0].award.state.is_live
        assert isinstance(outcomes[1].error, PermanentProviderError)
        assert not isinstance(outcomes[1].error, DuplicateAwardError)
        assert str(outcomes[1].error)

    def test_bulk_create_that_creates_nothing_answers_per_item(
        self, harness: ProviderHarness, bulk_provider: BaseProvider
    ):
        outcomes = bulk_provider.issue_many([issue_request(UNKNOWN_ID, recipient(n), **COURSE) for n in (1, 2)])

        assert [type(outcome.error) for outcome in outcomes] == [PermanentProviderError, PermanentProviderError]
        assert harness.all_awards() == []

    def test_bulk_create_never_sends_more_than_bulk_size(
        self, harness: ProviderHarness, bulk_provider: BaseProvider, template_id: str
    ):
        too_many = [issue_request(template_id, recipient(n), **COURSE) for n in range(bulk_provider.bulk_size + 1)]

        with pytest.raises(ValueError, match="bulk"):
            bulk_provider.issue_many(too_many)
        assert harness.server.journal == []

    def test_badges_created_behind_a_lost_bulk_answer_are_found(
        self, harness: ProviderHarness, bulk_provider: BaseProvider, template_id: str
    ):
        harness.inject("bulk_issue", "commit_then_drop")

        with pytest.raises(TransientProviderError):
            bulk_provider.issue_many([issue_request(template_id, recipient(n), **COURSE) for n in (1, 2)])

        for number in (1, 2):
            found = bulk_provider.find_award(template_id, recipient(number))
            assert found is not None
            assert found.state.is_live
