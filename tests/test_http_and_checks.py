"""The shared HTTP helpers and the system checks."""

from datetime import timedelta
from email.utils import format_datetime

import pytest
import requests
from django.utils import timezone
from hypothesis import example, given
from hypothesis import strategies as st

from badges_bridge.checks import check_providers, check_settings
from badges_bridge.exceptions import (
    AuthenticationError,
    ConfigurationError,
    PermanentProviderError,
    TransientProviderError,
)
from badges_bridge.providers import get_provider_class
from badges_bridge.providers.http import HttpClient, default_error_message, parse_retry_after, redact_emails
from badges_bridge.testing.server import FakeResponse, FakeServer


def test_retry_after_in_seconds_and_as_a_date():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(timezone.now() + timedelta(seconds=90), usegmt=True)
    assert 80 <= parse_retry_after(later) <= 91
    past = format_datetime(timezone.now() - timedelta(days=1), usegmt=True)
    assert parse_retry_after(past) == 0.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("plain text", "plain text"),
        ({"message": "Bad thing"}, "Bad thing"),
        ({"errors": {"name": ["can't be blank"]}}, "name: can't be blank"),
        ({"error": [{"message": "one"}, "two"]}, "one; two"),
        ({"data": {"message": "nested"}}, "nested"),
        ([1, 2], "1; 2"),
    ],
)
def test_default_error_message_reads_common_shapes(body, message):
    assert default_error_message(body) == message


class Echo(FakeServer):
    @FakeServer.route("GET", r"/html")
    def html(self, request):
        return FakeResponse(502, "<html><body>Bad gateway</body></html>")

    @FakeServer.route("GET", r"/denied")
    def denied(self, request):
        return FakeResponse(401, {"message": "no"})

    @FakeServer.route("GET", r"/echo")
    def echo(self, request):
        return FakeResponse(422, {"message": "recipient_email ada.l+x@example.co.uk is invalid"})

    @FakeServer.route("GET", r"/taken")
    def taken(self, request):
        return FakeResponse(422, {"message": f"refused {request.param('address')}: taken"})

    @FakeServer.route("GET", r"/garbage")
    def garbage(self, request):
        return FakeResponse(200, "not json")


@pytest.fixture(scope="module")
def client():
    with Echo() as server:
        yield HttpClient(
            server.base_url, auth=requests.auth.HTTPBasicAuth("t", ""), timeout=(1, 1), provider_name="Echo"
        )


def test_html_error_pages_are_not_copied_into_messages(client):
    with pytest.raises(TransientProviderError) as err:
        client.request("GET", "html?email=secret@example.com")
    assert "(HTML error page)" in str(err.value)
    assert "secret@example.com" not in str(err.value)


def test_auth_errors_and_unreadable_answers(client):
    with pytest.raises(AuthenticationError):
        client.request("GET", "denied")
    with pytest.raises(TransientProviderError, match="that is not JSON") as err:
        client.request("GET", "garbage")
    assert "check it" in str(err.value)


def test_system_checks_pass_with_the_defaults():
    assert check_providers() == []
    assert check_settings() == []


def test_system_checks_report_bad_settings(settings):
    settings.BADGES_BRIDGE_PROVIDERS = {"broken": "no.such.module.Provider", "notaprovider": "datetime.date"}
    settings.BADGES_BRIDGE_HTTP_TIMEOUT = 5
    settings.BADGES_BRIDGE_MAX_ATTEMPTS = 0
    settings.BADGES_BRIDGE_SECRET_KEYS = ["short"]
    assert {e.id for e in check_providers()} == {"badges_bridge.E001"}
    assert len(check_providers()) == 2
    assert {e.id for e in check_settings()} == {"badges_bridge.E002", "badges_bridge.E003", "badges_bridge.E004"}
    with pytest.raises(ConfigurationError, match="Unknown provider kind 'nope'"):
        get_provider_class("nope")


def test_addresses_in_provider_messages_are_redacted(client):
    with pytest.raises(PermanentProviderError) as err:
        client.request("GET", "echo")
    assert "(HTTP 422): recipient_email <e-mail> is invalid. " in str(err.value)


#: Addresses the redaction must remove whole, each with a note of what it exercises.
ADDRESSES = [
    "o'brien@example.com",  # apostrophe in the local part
    "ada.l+tag@example.co.uk",  # plus tag, dotted local part, several labels
    "first.last@mail.eu.example.org",  # subdomains
    "x@123.456.example",  # digits-only labels
    "user@example.museum",  # long top-level domain
    "user@example.xn--vermgensberatung-pwb",  # internationalised top-level domain in ASCII form
    "{weird}|~!#$%&*/=?^_`@example.com",  # every special character RFC 5322 allows in an atom
    '"john doe"@example.com',  # quoted local part with a space
    '"a\\"b"@example.com',  # quoted local part with an escaped quote
    "ADA@EXAMPLE.COM",  # capitals
    "user@[192.0.2.1]",  # domain literal
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_known_address_shapes_are_redacted_whole(address):
    assert redact_emails(f"refused {address}: taken") == "refused <e-mail>: taken"


@given(st.emails())
@example("o'brien@example.com")
def test_any_rfc5322_address_is_redacted_whole(address):
    assert redact_emails(f"refused {address}: taken") == "refused <e-mail>: taken"


@given(st.lists(st.emails(), min_size=2, max_size=4))
def test_several_addresses_in_one_message_are_all_redacted(addresses):
    text = "; ".join(f"recipient {address} is invalid" for address in addresses)
    assert redact_emails(text) == "; ".join("recipient <e-mail> is invalid" for _ in addresses)


def test_text_without_an_address_is_left_alone():
    text = "user_id: has already been taken; name@: can't be blank; a.b: 12 @ 3"
    assert redact_emails(text) == text


@pytest.mark.parametrize("address", ["o'brien@example.com", '"john doe"@example.com', "x@123.456.example"])
def test_provider_refusals_are_redacted_over_http(client, address):
    with pytest.raises(PermanentProviderError) as err:
        client.request("GET", "taken", params={"address": address})
    assert err.value.provider_message == "refused <e-mail>: taken"


def test_absolute_urls_off_the_api_host_are_never_requested(client):
    with FakeServer() as other:
        with pytest.raises(PermanentProviderError, match="not the configured API host") as refused:
            client.request("GET", f"{other.base_url}echo?email=ada@example.com")
        assert other.journal == []
    assert "ada@example.com" not in str(refused.value)
    with pytest.raises(AuthenticationError):  # an absolute URL on the API host itself is followed
        client.request("GET", f"{client.base_url}denied")


@pytest.mark.parametrize(
    ("hosts", "ok"),
    [([], True), (["badges.internal", "10.0.0.5"], True), ("badges.internal", False), (["http://x/"], False)],
)
def test_system_check_of_allowed_http_hosts(settings, hosts, ok):
    settings.BADGES_BRIDGE_ALLOWED_HTTP_HOSTS = hosts
    assert {e.id for e in check_settings()} == (set() if ok else {"badges_bridge.E006"})


def test_absolute_url_with_an_unreadable_port_is_refused(client):
    with pytest.raises(PermanentProviderError, match="not the configured API host"):
        client.request("GET", "http://127.0.0.1:port/echo")
