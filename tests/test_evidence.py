"""Evidence choice: only the facts a course badge chose reach the provider, and the preview shows the exact body."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api
from badges_bridge.models import BadgeIssuance, Criterion, StandaloneCourse
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Evidence+2026")
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]
CHOICES = ["grade,course,completion_date", "", "grade", "course", "completion_date"]


@pytest.fixture(params=["credly", "accredible"])
def harness(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(autouse=True)
def course():
    StandaloneCourse.objects.create(course_key=COURSE, display_name="Evidence 101")


def make_badge(harness, evidence: str):
    template = make_template(make_account(harness), harness, "Evidence")
    return make_course_badge(
        template, COURSE, criterion=Criterion.GRADE_AT_LEAST, grade_threshold=80, evidence=evidence
    )


def issued_body(harness, learner, deliver) -> dict:
    """Earn the badge with a grade of 87.5 (the preview's sample grade); the body the provider received."""
    deliver(send.send_grade, learner, COURSE, 0.875)
    (request,) = harness.requests_for("issue")
    return request.json()


#: Per provider: the parts of a body that name the learner or depend on the moment it was built.
def without_learner_and_dates(kind: str, body: dict) -> dict:
    body = copy.deepcopy(body)
    if kind == "credly":
        for key in ("recipient_email", "issued_to_first_name", "issued_to_last_name", "issuer_earner_id"):
            body.pop(key)
        body["issued_at"] = bool(body["issued_at"])
        return body
    credential = body["credential"]
    credential.pop("recipient")
    credential["issued_on"] = bool(credential["issued_on"])
    for attributes in (credential.get("custom_attributes", {}), credential["meta_data"]):
        if "completion_date" in attributes:
            attributes["completion_date"] = "<day>"
    return body


@pytest.mark.parametrize("evidence", CHOICES)
def test_the_preview_is_the_body_a_real_issue_sends(harness, learner, deliver, evidence):
    badge = make_badge(harness, evidence)
    preview = api.issue_payload_preview(badge.pk)
    sent = issued_body(harness, learner, deliver)
    assert without_learner_and_dates(harness.kind, preview) == without_learner_and_dates(harness.kind, sent)


def test_the_preview_names_the_sample_learner_only(credly, accredible):
    for harness in (credly, accredible):
        badge = make_badge(harness, "grade")
        text = str(api.issue_payload_preview(badge.pk))
        assert "learner@example.com" in text
        assert "Sample" in text
        assert "87.5" in text
        assert "Evidence 101" not in text  # the course was not chosen


@pytest.mark.parametrize("evidence", CHOICES)
def test_an_unchosen_fact_never_reaches_the_provider(harness, learner, deliver, evidence):
    badge = make_badge(harness, evidence)
    body = issued_body(harness, learner, deliver)
    text = str(body)
    facts = set(filter(None, evidence.split(",")))
    assert ("87.5" in text) == ("grade" in facts)
    assert ("Evidence 101" in text) == ("course" in facts)
    assert (str(COURSE) in text) == ("course" in facts)
    if harness.kind == "accredible":  # Credly has no attributes: its badge date is the fact (see below)
        assert ("completion_date" in text) == ("completion_date" in facts)
    row = BadgeIssuance.objects.get(course_badge=badge)
    assert row.grade == 87.5  # the ledger keeps the grade either way: only the provider is spared it


def issued_moment(kind: str, body: dict) -> datetime:
    if kind == "credly":
        return datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    return datetime.fromisoformat(body["credential"]["issued_on"] + "T00:00:00+00:00")


@pytest.mark.parametrize("chosen", [True, False])
def test_the_completion_date_is_the_day_the_criterion_was_met_only_when_chosen(
    credly, learner, deliver, work_queue, chosen
):
    badge = make_badge(credly, "completion_date" if chosen else "grade")
    deliver(send.send_grade, learner, COURSE, 0.875)
    met = timezone.now() - timedelta(days=30)
    BadgeIssuance.objects.filter(course_badge=badge).update(qualified_at=met)  # e.g. a backfilled learner
    work_queue.run()
    (request,) = credly.requests_for("issue")
    sent = issued_moment("credly", request.json())
    if chosen:
        assert abs(sent - met) < timedelta(seconds=1)
    else:
        assert timezone.now() - sent < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("evidence", "said"),
    [
        ("grade,course,completion_date", {"course", "date", "grade"}),
        ("", set()),
        ("grade", {"grade"}),
        ("course,completion_date", {"course", "date"}),
    ],
)
def test_the_learner_is_told_only_the_facts_the_badges_send(credly, learner, deliver, evidence, said):
    make_badge(credly, evidence)
    deliver(send.send_grade, learner, COURSE, 0.875)
    (recipient,) = api.learner_privacy(learner.pk).recipients
    phrases = {
        "course": "the course's name and web address, and what you achieved in it",
        "date": "the date you earned the badge",
        "grade": "your course grade",
    }
    assert {key for key, phrase in phrases.items() if phrase in recipient.fields} == said
    assert "your e-mail address" in recipient.fields


def test_a_badge_the_learner_can_still_earn_counts_its_grade(credly, learner, monkeypatch):
    from badges_bridge import compat

    make_badge(credly, "grade")
    monkeypatch.setattr(compat, "enrolled_course_keys", lambda user: [COURSE])
    (recipient,) = api.learner_privacy(learner.pk).recipients
    assert recipient.badges == ("Evidence",)
    assert "your course grade" in recipient.fields


@pytest.mark.parametrize("chosen", [True, False])
def test_the_learner_sees_the_expiry_the_provider_received(credly, learner, deliver, work_queue, chosen):
    badge = make_badge(credly, "completion_date" if chosen else "grade")
    badge.expires_after_days = 10
    badge.save()
    deliver(send.send_grade, learner, COURSE, 0.875)
    met = timezone.now() - timedelta(days=30)
    BadgeIssuance.objects.filter(course_badge=badge).update(qualified_at=met)
    work_queue.run()
    (request,) = credly.requests_for("issue")
    sent = datetime.fromisoformat(request.json()["expires_at"].replace("Z", "+00:00"))
    (shown,) = api.learner_badges(learner.pk)
    assert abs(shown.expires_at - sent) < timedelta(seconds=5)
    assert (shown.status == "expired") == chosen  # met 30 days ago, expired after 10 when dated then
