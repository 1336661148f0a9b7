"""The learner page: what it shows for each state, its forms (POST with CSRF), and its base template."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api
from badges_bridge.models import BadgeIssuance, IssuanceState, RevokedBy, RevokePolicy
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Page+2026")
PAGE = "/badges_bridge/my-badges/"
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def account(credly):
    return make_account(credly)


def badge_in(account, credly, name: str, course: CourseKey = COURSE, **fields):
    return make_course_badge(make_template(account, credly, name), course, **fields)


@pytest.fixture
def page(learner):
    client = Client()
    client.force_login(learner)

    def get() -> str:
        response = client.get(PAGE)
        assert response.status_code == 200
        return response.content.decode()

    get.client = client
    return get


def set_row(learner, badge, **fields) -> BadgeIssuance:
    BadgeIssuance.objects.filter(user=learner, course_badge=badge).update(**fields)
    return BadgeIssuance.objects.get(user=learner, course_badge=badge)


def test_the_page_url_is_documented_one():
    assert reverse("badges_bridge:learner-page") == PAGE


def test_anonymous_visitors_are_sent_to_sign_in():
    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == f"/login?next={PAGE}"


def test_a_learner_without_badges_sees_empty_sections(page):
    html = page()
    assert "You have not earned a badge yet." in html
    assert "No badge is offered in the courses you are enrolled in." in html
    assert "nothing about you is sent to a badge service" in html
    assert "Revoked, expired and declined badges" not in html


def test_each_state_in_the_learners_words(page, account, credly, learner, settings):
    settings.BADGES_BRIDGE_ISSUER_NAME = "Example Academy"
    now = timezone.now()
    badges = {
        name: badge_in(account, credly, name, CourseKey.from_string(f"course-v1:Org+{name.replace(' ', '')}+2026"))
        for name in ("Pending Badge", "Public Badge", "Private Badge", "Revoked Badge", "Rejected Badge")
    }
    badges["Expired Badge"] = badge_in(
        account, credly, "Expired Badge", CourseKey.from_string("course-v1:Org+Old+2020"), expires_after_days=30
    )
    badges["Unmet Badge"] = badge_in(
        account, credly, "Unmet Badge", CourseKey.from_string("course-v1:Org+Unmet+2026"),
        revoke_policy=RevokePolicy.CRITERION_UNMET,
    )  # fmt: skip
    for name, badge in badges.items():
        send.send_passing_status(learner, badge.course_key, name != "Unmet Badge")
    issued = {"state": S.ISSUED, "external_id": "x", "public_url": "https://badges.example.com/b/1"}
    set_row(learner, badges["Pending Badge"], provider_state="pending", **issued)
    set_row(learner, badges["Public Badge"], provider_state="accepted", provider_public=True, **issued)
    set_row(learner, badges["Private Badge"], provider_state="accepted", provider_public=False, **issued)
    set_row(
        learner,
        badges["Revoked Badge"],
        state=S.REVOKED,
        revoked_by=RevokedBy.OPERATOR,
        revoke_reason="Awarded by mistake",
        revoked_at=now,
    )
    set_row(learner, badges["Rejected Badge"], state=S.REJECTED, provider_state="rejected")
    set_row(
        learner, badges["Expired Badge"], qualified_at=now - timedelta(days=40), provider_state="accepted", **issued
    )
    assert BadgeIssuance.objects.get(course_badge=badges["Unmet Badge"]).state == S.NOT_MET

    html = page()
    assert "Check your e-mail to accept this badge at Credly." in html
    assert "Accepted and public." in html
    assert "Accepted and private: only you can see it." in html
    assert "make it public at Credly" in html
    assert "Revoked." in html
    assert "Awarded by mistake" in html
    assert "You declined this badge at Credly." in html
    assert "Declining a badge deletes it for good" in html
    assert "Expired." in html
    assert "Example Academy" in html
    assert html.count("Add to LinkedIn profile") == 2  # the accepted ones only (not pending, expired, revoked)
    earned, rest = html.split('id="bb-available-title"')
    available, past = rest.split("Revoked, expired and declined badges")
    past = past.split('id="bb-privacy"')[0]
    assert "Revoked Badge" in past
    assert "Rejected Badge" in past
    assert "Expired Badge" in past
    assert "Public Badge" in earned
    assert "Revoked Badge" not in earned
    # The internal not_met state is never shown as a badge; the badge is still there to earn.
    assert "Unmet Badge" not in earned + past
    assert "Unmet Badge" in available


def test_available_badges_show_the_criterion_and_progress(page, account, credly, learner):
    badge_in(account, credly, "Grade Star", criterion="grade_at_least", grade_threshold=80,
             revoke_policy=RevokePolicy.CRITERION_UNMET)  # fmt: skip
    send.send_grade(learner, COURSE, 0.6)
    html = page()
    assert "Reach a course grade of at least 80%." in html
    assert "Your current grade is 60%; 80% is needed." in html
    assert '<progress max="100" value="75"' in html


def test_consent_mode_says_what_is_sent_to_whom_and_asks(page, account, credly, learner, settings):
    settings.BADGES_BRIDGE_REQUIRE_CONSENT = True
    badge_in(account, credly, "Consent Badge")
    send.send_passing_status(learner, COURSE, True)
    html = page()
    assert "Your consent is needed" in html
    assert "1 badge is waiting for your consent." in html
    assert "Waiting for your consent to send your details to Credly." in html
    assert "<strong>Credly</strong>" in html
    assert "for the badge Consent Badge" in html
    assert "your name, your e-mail address" in html
    assert "I agree: send my badges" in html


def test_the_consent_form_releases_the_badge(page, account, credly, learner, settings):
    settings.BADGES_BRIDGE_REQUIRE_CONSENT = True
    badge = badge_in(account, credly, "Consent Badge")
    send.send_passing_status(learner, COURSE, True)
    response = page.client.post(reverse("badges_bridge:learner-consent"), {"choice": "give"}, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert "Thank you: your badges will be sent" in response.content.decode()
    assert BadgeIssuance.objects.get(course_badge=badge).state == S.PENDING
    html = page.client.post(reverse("badges_bridge:learner-consent"), {"choice": "withdraw"}, follow=True)
    assert "Consent withdrawn" in html.content.decode()
    assert BadgeIssuance.objects.get(course_badge=badge).state == S.WAITING_CONSENT


def test_the_opt_out_form(page, learner):
    response = page.client.post(reverse("badges_bridge:learner-opt-out"), {"choice": "out"}, follow=True)
    assert "You opted out: no new badge will be sent." in response.content.decode()
    assert api.learner_privacy(learner.pk).opted_out
    assert "Opt back in to badges" in page()
    page.client.post(reverse("badges_bridge:learner-opt-out"), {"choice": "in"})
    assert not api.learner_privacy(learner.pk).opted_out


def test_forms_need_post_a_known_choice_and_csrf(page, learner):
    consent = reverse("badges_bridge:learner-consent")
    assert page.client.get(consent).status_code == 405
    assert page.client.post(consent, {"choice": "maybe"}).status_code == 400
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(learner)
    assert strict.post(consent, {"choice": "give"}).status_code == 403
    assert strict.post(reverse("badges_bridge:learner-revoke", args=[1]), {"confirm": "yes"}).status_code == 403
    assert Client().post(consent, {"choice": "give"}).status_code == 302  # anonymous: sign in first


def test_the_revoke_form_needs_the_confirmation(page, account, credly, learner):
    badge = badge_in(account, credly, "Revocable")
    send.send_passing_status(learner, COURSE, True)
    row = set_row(learner, badge, state=S.ISSUED, external_id="x", public_url="https://badges.example.com/b/2")
    url = reverse("badges_bridge:learner-revoke", args=[row.pk])
    response = page.client.post(url, {"reason": "No longer relevant"}, follow=True)
    assert "Tick the confirmation box" in response.content.decode()
    assert BadgeIssuance.objects.get(pk=row.pk).state == S.ISSUED
    response = page.client.post(url, {"reason": "No longer relevant", "confirm": "yes"}, follow=True)
    assert "The badge will be revoked" in response.content.decode()
    row.refresh_from_db()
    assert (row.revoked_by, row.revoke_reason) == (
        RevokedBy.LEARNER,
        "Revoked at the learner's request: No longer relevant",
    )


def test_a_learner_cannot_revoke_another_learners_badge(page, account, credly, django_user_model):
    badge = badge_in(account, credly, "Bob's")
    bob = django_user_model.objects.create_user("bob", "bob@example.com")
    send.send_passing_status(bob, COURSE, True)
    row = set_row(bob, badge, state=S.ISSUED, external_id="y")
    response = page.client.post(reverse("badges_bridge:learner-revoke", args=[row.pk]), {"confirm": "yes"}, follow=True)
    assert "This badge cannot be revoked." in response.content.decode()
    assert BadgeIssuance.objects.get(pk=row.pk).state == S.ISSUED


def test_the_page_stands_alone_outside_the_lms(page):
    html = page()
    assert html.startswith("<!DOCTYPE html>")
    assert '<a class="bb-skip" href="#main">Skip to main content</a>' in html


def test_the_page_extends_the_lms_template_when_there_is_one(page, settings):
    lms_base = (
        "<html><head><title>{% block title %}{% endblock %} | LMS</title>{% block headextra %}{% endblock %}</head>"
        '<body class="{% block bodyclass %}{% endblock %}"><header>LMS header</header>'
        "{% block body %}{% endblock %}</body></html>"
    )
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    ("django.template.loaders.locmem.Loader", {"main_django.html": lms_base}),
                    "django.template.loaders.app_directories.Loader",
                ],
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ],
            },
        }
    ]
    html = page()
    assert html.startswith("<html><head><title>My badges | LMS</title>")
    assert "<header>LMS header</header>" in html
    assert 'class="view-badges-bridge-learner"' in html
    assert "Skip to main content" not in html
