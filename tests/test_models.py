"""Validation rules of the models, as ``full_clean()`` (and so the admin) applies them."""

import warnings

import django
import pytest
from django.core.exceptions import ValidationError
from opaque_keys.edx.keys import CourseKey

from badges_bridge.models import BadgeIssuance, BadgeTemplate, CourseBadge, IssuanceState, ProviderAccount
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

pytestmark = pytest.mark.django_db
COURSE = CourseKey.from_string("course-v1:Org+Models+2026")


@pytest.fixture
def templates(credly):
    account = make_account(credly)
    return make_template(account, credly, "First"), make_template(account, credly, "Second")


def test_template_cannot_change_once_the_badge_has_ledger_rows(templates, learner):
    first, second = templates
    badge = make_course_badge(first, COURSE)
    BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.ISSUED)
    badge.template = second

    with pytest.raises(ValidationError) as refused:
        badge.full_clean()

    [message] = refused.value.message_dict["template"]
    assert "disable this badge and add a new course badge" in message


def test_template_can_change_while_the_badge_has_no_ledger_rows(templates):
    first, second = templates
    badge = make_course_badge(first, COURSE)
    badge.template = second
    badge.full_clean()


def test_other_fields_of_a_badge_with_ledger_rows_can_change(templates, learner):
    badge = make_course_badge(templates[0], COURSE)
    BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.ISSUED)
    badge.enabled = False
    badge.full_clean()


def test_a_new_or_changed_template_must_be_active(templates):
    first, second = templates
    second.state = BadgeTemplate.State.ARCHIVED
    second.save()
    with pytest.raises(ValidationError, match="archived at the provider"):
        CourseBadge(course_key=COURSE, template=second).full_clean()
    badge = make_course_badge(first, COURSE)
    badge.template = second
    with pytest.raises(ValidationError, match="archived at the provider"):
        badge.full_clean()


def test_a_badge_keeping_its_archived_template_can_be_saved_disabled(templates, learner):
    badge = make_course_badge(templates[0], COURSE)
    BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.ISSUED)
    BadgeTemplate.objects.filter(pk=badge.template_id).update(state=BadgeTemplate.State.ARCHIVED)
    badge.refresh_from_db()
    badge.enabled = False
    badge.full_clean()


def _credly_account(url: str) -> ProviderAccount:
    return ProviderAccount(name="Credly", provider="credly", api_base_url=url, organization_id="org")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.credly.com/v1/",
        "http://127.0.0.1:8080/v1/",
        "http://127.10.20.30/v1/",
        "http://localhost:8080/v1/",
        "http://LOCALHOST/v1/",
        "http://[::1]:8080/v1/",
    ],
)
def test_api_base_url_uses_https_or_a_loopback_host(url):
    _credly_account(url).full_clean()


@pytest.mark.parametrize(
    "url",
    ["http://api.credly.com/v1/", "http://10.0.0.5/v1/", "http://badges.internal/v1/", "ftp://api.credly.com/v1/"],
)
def test_plain_http_to_another_host_is_refused(url):
    with pytest.raises(ValidationError) as refused:
        _credly_account(url).full_clean()

    [message] = refused.value.message_dict["api_base_url"]
    assert "https" in message
    assert "BADGES_BRIDGE_ALLOWED_HTTP_HOSTS" in message


def test_hosts_allowed_by_the_setting_may_use_plain_http(settings):
    settings.BADGES_BRIDGE_ALLOWED_HTTP_HOSTS = ["badges.internal"]
    _credly_account("http://Badges.Internal:8080/v1/").full_clean()
    with pytest.raises(ValidationError):
        _credly_account("http://other.internal/v1/").full_clean()


def test_a_single_host_given_as_a_string_is_one_host(settings):
    settings.BADGES_BRIDGE_ALLOWED_HTTP_HOSTS = "badges.internal"
    _credly_account("http://badges.internal/v1/").full_clean()
    with pytest.raises(ValidationError):
        _credly_account("http://b/v1/").full_clean()


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (ProviderAccount, "api_base_url"),
        (BadgeTemplate, "image_url"),
        (BadgeTemplate, "url"),
        (BadgeIssuance, "public_url"),
    ],
)
def test_url_form_fields_assume_https_without_a_deprecation_warning(model, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        form_field = model._meta.get_field(name).formfield()
    # forms.URLField chooses the scheme of a URL typed without one from Django 5.0 on; before, it is http.
    expected = "https" if django.VERSION >= (5, 0) else "http"
    assert form_field.clean("badges.example.com") == f"{expected}://badges.example.com"
