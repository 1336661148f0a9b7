"""The learner page in a real browser (headless Chromium): badges, sharing, keyboard, contrast, consent, revoke.

Each step saves a screenshot (see conftest.py for the folder).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from opaque_keys.edx.keys import CourseKey

from badges_bridge.models import BadgeIssuance, BadgeTemplate, Criterion, IssuanceState, RevokedBy, RevokePolicy
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

PAGE = "/badges_bridge/my-badges/"
S = IssuanceState
pytestmark = pytest.mark.django_db(transaction=True)

#: Contrast ratio (WCAG 2.x) of an element's text against the first opaque background behind it.
CONTRAST_JS = """
function channel(c) { c = c / 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }
function luminance(rgb) { return 0.2126 * channel(rgb[0]) + 0.7152 * channel(rgb[1]) + 0.0722 * channel(rgb[2]); }
function parse(color) {
  var m = color.match(/[\\d.]+/g).map(Number);
  return {rgb: m.slice(0, 3), alpha: m.length > 3 ? m[3] : 1};
}
function background(el) {
  for (; el; el = el.parentElement) {
    var c = parse(getComputedStyle(el).backgroundColor);
    if (c.alpha > 0.99) { return c.rgb; }
  }
  return [255, 255, 255];
}
var el = arguments[0];
var a = luminance(parse(getComputedStyle(el).color).rgb), b = luminance(background(el));
return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
"""


#: A badge image (a small SVG), as providers serve them.
IMAGE = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 96 96'>"
    "<circle cx='48' cy='48' r='44' fill='%230b4f9c'/><circle cx='48' cy='48' r='30' fill='%23ffd24c'/></svg>"
)


def course(name: str) -> CourseKey:
    return CourseKey.from_string(f"course-v1:DemoX+{name}+2026")


@pytest.fixture
def learner_data(credly, django_user_model, receivers, settings):
    """Ada: an accepted public badge, one to accept, one revoked, one waiting for consent, one to earn."""
    settings.BADGES_BRIDGE_REQUIRE_CONSENT = True
    settings.BADGES_BRIDGE_ISSUER_NAME = "Demo Academy"
    account = make_account(credly, name="Credly main")
    ada = django_user_model.objects.create_user("ada", "ada@example.com", "pw", first_name="Ada", last_name="Lovelace")
    ada_pk = ada.pk
    from badges_bridge import api

    api.set_consent(ada_pk, True)
    badges = {}
    for name in ("Data Skills", "Python Basics", "Statistics"):
        badges[name] = make_course_badge(make_template(account, credly, name), course(name.replace(" ", "")))
        send.send_passing_status(ada, badges[name].course_key, True)
    assert BadgeIssuance.objects.filter(user=ada, state=S.ISSUED).count() == 3
    BadgeTemplate.objects.update(image_url=IMAGE)
    BadgeIssuance.objects.filter(user=ada, course_badge=badges["Data Skills"]).update(
        provider_state="accepted", provider_public=True
    )
    BadgeIssuance.objects.filter(user=ada, course_badge=badges["Statistics"]).update(
        state=S.REVOKED, revoked_by=RevokedBy.OPERATOR, revoke_reason="Awarded by mistake"
    )
    api.set_consent(ada_pk, False)
    badges["Machine Learning"] = make_course_badge(
        make_template(account, credly, "Machine Learning"), course("MachineLearning")
    )
    send.send_passing_status(ada, badges["Machine Learning"].course_key, True)
    assert BadgeIssuance.objects.get(course_badge=badges["Machine Learning"]).state == S.WAITING_CONSENT
    badges["Top Grade"] = make_course_badge(
        make_template(account, credly, "Top Grade"),
        course("MachineLearning"),
        criterion=Criterion.GRADE_AT_LEAST,
        grade_threshold=Decimal("90"),
        revoke_policy=RevokePolicy.CRITERION_UNMET,
    )
    send.send_grade(ada, badges["Top Grade"].course_key, 0.81)
    BadgeTemplate.objects.update(image_url=IMAGE)
    return {"user": ada, "badges": badges}


@pytest.fixture
def page(browser, live_server, learner_data):
    """The learner's browser, signed in (the test project has no login page: the session cookie is set)."""
    from selenium.webdriver.common.by import By

    client = Client()
    client.force_login(learner_data["user"])
    browser.get(f"{live_server.url}{PAGE}")  # sends an anonymous visitor to sign in: the site is open for its cookie
    browser.add_cookie({"name": "sessionid", "value": client.cookies["sessionid"].value, "path": "/"})
    browser.get(f"{live_server.url}{PAGE}")
    assert browser.current_url.endswith(PAGE), (browser.current_url, browser.page_source[:500])
    browser.find_element(By.TAG_NAME, "h1")
    yield browser
    browser.delete_all_cookies()


def css(browser, selector: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, selector)


def css_all(browser, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def message(browser, expected: str) -> str:
    """Wait until the page (the one after a form was posted) shows a message with ``expected``; return it."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(driver) -> str:
        try:
            texts = [element.text for element in css_all(driver, ".bb-messages")]
        except WebDriverException:  # the previous page is being replaced: its elements are stale or detached
            return ""
        return next((text for text in texts if expected in text), "")

    return WebDriverWait(browser, 10).until(shown, f"no message saying {expected!r}")


def card(browser, name: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.XPATH, f"//article[.//h3[normalize-space()='{name}']]")


def test_the_learner_sees_their_badges_and_can_share_them(page, screenshot, learner_data):
    shot = screenshot("learner-page")
    assert shot.stat().st_size > 10_000
    assert page.title == "My badges"
    assert "Your consent is needed" in css(page, ".bb-consent-needed").text

    data = card(page, "Data Skills")
    assert "Accepted and public." in data.text
    assert "Demo Academy" in data.text
    linkedin = data.find_element("css selector", "a[data-share='linkedin-profile']").get_attribute("href")
    assert linkedin.startswith("https://www.linkedin.com/profile/add?startTask=CERTIFICATION_NAME&name=Data+Skills")
    assert "Check your e-mail to accept this badge at Credly." in card(page, "Python Basics").text
    assert "Awarded by mistake" in card(page, "Statistics").text
    assert "Waiting for your consent" in card(page, "Machine Learning").text
    top = card(page, "Top Grade")
    assert "Your current grade is 81%; 90% is needed." in top.text
    assert top.find_element("css selector", "progress").get_attribute("value") == "90"

    # Progressive enhancement: the copy button appears and says what it did, for screen readers too.
    copy = data.find_element("css selector", ".bb-copy-button")
    assert copy.is_displayed()
    copy.click()
    page.implicitly_wait(0)
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(page, 5).until(lambda driver: css(driver, "#bb-announce").get_attribute("textContent"))
    page.implicitly_wait(5)
    embed = data.find_element("css selector", "textarea[readonly]").get_attribute("value")
    row = BadgeIssuance.objects.get(course_badge=learner_data["badges"]["Data Skills"])
    assert embed.startswith(f'<a href="{row.public_url}" target="_blank" rel="noopener"><img src="data:image/svg+xml')
    assert embed.endswith('alt="Data Skills" width="150" height="150"></a>')


def test_the_page_is_usable_with_a_keyboard_and_a_screen_reader(page, screenshot):
    from selenium.webdriver.common.keys import Keys

    # Every image has a text alternative, every form field a label, every section a heading.
    assert all(image.get_attribute("alt") is not None for image in css_all(page, "img"))
    for field in css_all(page, "input:not([type=hidden]), textarea, select"):
        field_id = field.get_attribute("id")
        assert field_id, field.get_attribute("outerHTML")
        assert css_all(page, f"label[for='{field_id}']"), field.get_attribute("outerHTML")
    for section in css_all(page, "section[aria-labelledby]"):
        assert css_all(page, f"#{section.get_attribute('aria-labelledby')}")
    assert page.execute_script("return document.documentElement.lang")

    # The keyboard reaches the skip link first, then the share actions and the consent button.
    body = css(page, "body")
    body.send_keys(Keys.TAB)
    assert page.switch_to.active_element.text == "Skip to main content"
    screenshot("keyboard-skip-link")
    reached = []
    for _ in range(60):
        page.switch_to.active_element.send_keys(Keys.TAB)
        reached.append(" ".join(page.switch_to.active_element.text.split()))
    assert "Add to LinkedIn profile (opens in a new tab)" in reached
    assert "Copy link" in reached
    assert "I agree: send my badges" in reached
    focused = page.switch_to.active_element
    outline = page.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused)
    assert outline != "none"

    # Text contrast of at least 4.5:1 (WCAG AA) on the page's texts, links, buttons and states.
    selectors = ["h1", ".bb-intro", ".bb-status", ".bb-reason", ".bb-hint", ".bb-button", ".bb-facts dt", "a"]
    for selector in selectors:
        for element in css_all(page, f"#badges-bridge {selector}"):
            if element.is_displayed() and element.text.strip():
                ratio = page.execute_script(CONTRAST_JS, element)
                assert ratio >= 4.5, f"{selector} {element.text!r}: contrast {ratio:.2f}"


def test_consent_then_revoke_then_opt_out(page, screenshot, learner_data, credly):
    css(page, "button[value='give']").click()
    message(page, "Thank you: your badges will be sent")
    waiting = BadgeIssuance.objects.get(course_badge=learner_data["badges"]["Machine Learning"])
    assert waiting.state == S.ISSUED  # queued on consent and issued at the fake Credly
    assert "Check your e-mail to accept this badge at Credly." in card(page, "Machine Learning").text
    screenshot("after-consent")

    data = card(page, "Data Skills")
    data.find_element("css selector", "details.bb-revoke summary").click()
    data.find_element("css selector", "textarea[name='reason']").send_keys("I retook the course")
    data.find_element("css selector", "button[type='submit']").click()
    assert BadgeIssuance.objects.get(course_badge=learner_data["badges"]["Data Skills"]).state == S.ISSUED
    data = card(page, "Data Skills")  # the browser refused to submit without the confirmation box
    data.find_element("css selector", "input[name='confirm']").click()
    data.find_element("css selector", "button[type='submit']").click()
    message(page, "The badge will be revoked")
    row = BadgeIssuance.objects.get(course_badge=learner_data["badges"]["Data Skills"])
    assert (row.state, row.revoke_reason) == (S.REVOKED, "Revoked at the learner's request: I retook the course")
    assert "I retook the course" in card(page, "Data Skills").text
    screenshot("after-revoke")

    css(page, "button[value='out']").click()
    message(page, "You opted out")
    assert css(page, "button[value='in']").is_displayed()
    screenshot("after-opt-out")
    assert reverse("badges_bridge:learner-page") == PAGE
