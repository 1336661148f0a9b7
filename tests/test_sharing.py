"""The exact contents of the share links of an earned badge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, sharing
from badges_bridge.models import BadgeIssuance
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

ISSUED = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
EXPIRES = datetime(2028, 3, 13, 9, 30, tzinfo=UTC)
URL = "https://www.credly.com/badges/b2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f/public_url"
IMAGE = "https://cdn.example.com/data & skills.png"


def links(**overrides):
    values = {
        "name": "Data & Skills",
        "issuer": "Example Academy",
        "url": URL,
        "image_url": IMAGE,
        "issued_at": ISSUED,
        "expires_at": EXPIRES,
        "credential_id": "b2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f",
    }
    return sharing.share_links(**{**values, **overrides})


def test_linkedin_add_to_profile_carries_every_certification_field():
    assert links().linkedin_add_to_profile == (
        "https://www.linkedin.com/profile/add?startTask=CERTIFICATION_NAME&name=Data+%26+Skills"
        "&organizationName=Example+Academy&issueYear=2026&issueMonth=3&expirationYear=2028&expirationMonth=3"
        "&certUrl=https%3A%2F%2Fwww.credly.com%2Fbadges%2Fb2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f%2Fpublic_url"
        "&certId=b2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f"
    )


def test_linkedin_add_to_profile_leaves_out_what_is_not_known():
    url = links(expires_at=None, issuer="", credential_id="").linkedin_add_to_profile
    assert dict(parse_qsl(urlsplit(url).query)) == {
        "startTask": "CERTIFICATION_NAME",
        "name": "Data & Skills",
        "issueYear": "2026",
        "issueMonth": "3",
        "certUrl": URL,
    }


def test_social_share_links():
    share = links()
    encoded = "https%3A%2F%2Fwww.credly.com%2Fbadges%2Fb2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f%2Fpublic_url"
    assert share.linkedin == f"https://www.linkedin.com/sharing/share-offsite/?url={encoded}"
    assert share.facebook == f"https://www.facebook.com/sharer/sharer.php?u={encoded}"
    assert share.x == (
        f"https://x.com/intent/tweet?text=I+earned+the+Data+%26+Skills+badge+from+Example+Academy.&url={encoded}"
    )


def test_email_link():
    share = links()
    assert share.email == (
        "mailto:?subject=My%20Data%20%26%20Skills%20badge"
        "&body=I%20earned%20the%20Data%20%26%20Skills%20badge%20from%20Example%20Academy."
        f"%20See%20it%20here%3A%20{URL.replace(':', '%3A').replace('/', '%2F')}"
    )
    subject, body = (unquote(part.split("=", 1)[1]) for part in share.email.removeprefix("mailto:?").split("&"))
    assert subject == "My Data & Skills badge"
    assert body == f"I earned the Data & Skills badge from Example Academy. See it here: {URL}"


def test_x_text_without_an_issuer():
    assert dict(parse_qsl(urlsplit(links(issuer="").x).query))["text"] == "I earned the Data & Skills badge."


def test_embed_snippet_is_escaped_html():
    assert links().embed_html == (
        f'<a href="{URL}" target="_blank" rel="noopener">'
        '<img src="https://cdn.example.com/data &amp; skills.png" alt="Data &amp; Skills" width="150" height="150">'
        "</a>"
    )
    hostile = links(name='"><script>alert(1)</script>', image_url="").embed_html
    assert hostile == (
        f'<a href="{URL}" target="_blank" rel="noopener">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</a>'
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("receivers")
def test_an_accepted_badge_gets_its_share_links_from_the_ledger(credly, learner, settings):
    settings.BADGES_BRIDGE_ISSUER_NAME = "Example Academy"
    course = CourseKey.from_string("course-v1:Org+Share+2026")
    badge = make_course_badge(
        make_template(make_account(credly), credly, "Data Skills"), course, expires_after_days=365
    )
    send.send_passing_status(learner, course, True)
    BadgeIssuance.objects.filter(user=learner).update(
        state="issued", external_id="cred-1", public_url=URL, provider_state="pending", qualified_at=ISSUED
    )
    [pending] = api.learner_badges(learner.pk)
    assert pending.share is None  # to be accepted first
    assert pending.status_text == "Check your e-mail to accept this badge at Credly."

    BadgeIssuance.objects.filter(user=learner).update(provider_state="accepted")
    [accepted] = api.learner_badges(learner.pk)
    assert accepted.expires_at == ISSUED + timedelta(days=365)
    query = dict(parse_qsl(urlsplit(accepted.share.linkedin_add_to_profile).query))
    assert query == {
        "startTask": "CERTIFICATION_NAME",
        "name": "Data Skills",
        "organizationName": "Example Academy",
        "issueYear": "2026",
        "issueMonth": "3",
        "expirationYear": "2027",
        "expirationMonth": "3",
        "certUrl": URL,
        "certId": "cred-1",
    }
    assert badge.template.name in accepted.as_dict()["share"]["embed_html"]
