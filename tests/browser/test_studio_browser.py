"""The course team's Studio page in a real browser (headless Chromium), from an empty course to a working badge.

A course staff member adds a badge, hits a validation error, fixes it, sees who already qualifies, edits the
badge, backfills it and watches the progress, approves a learner, awards the badge by hand to an instructor
and disables it; the form is also used with the keyboard only. Each step saves a screenshot (see conftest.py);
the course staff documentation shows them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from badges_bridge.models import (
    BackfillRun,
    BadgeIssuance,
    CourseBadge,
    CourseBadgeChange,
    IssuanceState,
    SeriesProgress,
)
from badges_bridge.testing.setup import make_course_badge
from tests.browser.conftest import click_and_wait_for_the_next_page
from tests.browser.test_learner_browser import CONTRAST_JS
from tests.studio import (
    COURSE,
    EXAM,
    OTHER_COURSE,
    studio_site,
)

pytestmark = pytest.mark.django_db(transaction=True)


class Staff:
    """A course staff member at the browser."""

    def __init__(self, driver, live_server, screenshot) -> None:
        self.driver = driver
        self.base = live_server.url
        self.screenshot = screenshot

    def css(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def css_all(self, selector: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base}{path}")
        self.check()

    def follow(self, element) -> None:
        """Click what loads a new page and wait until it replaced this one."""
        click_and_wait_for_the_next_page(self.driver, element)
        self.check()

    def button(self, text: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(
            By.XPATH, f"//button[normalize-space()='{text}'] | //a[normalize-space()='{text}']"
        )

    def shoot(self, name: str) -> None:
        """A screenshot of the whole page, from its top."""
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.screenshot(name)

    def check(self) -> None:
        body = self.css("body").text
        assert "Server Error" not in body, body[:500]
        assert "Traceback" not in body

    def message(self) -> str:
        return " ".join(element.text for element in self.css_all(".bb-messages"))

    def type(self, selector: str, text: str) -> None:
        field = self.css(selector)
        field.clear()
        field.send_keys(text)


@pytest.fixture
def site(credly, django_user_model):
    return studio_site(credly, django_user_model)


@pytest.fixture
def staff(browser, live_server, site, screenshot):
    """The course's staff member, signed in (the test project has no sign-in page: the session cookie is set)."""
    client = Client()
    client.force_login(site.users["course_staff"])
    browser.get(f"{live_server.url}/static/badges_bridge/studio.css")  # any page of the site, for its cookie
    browser.add_cookie({"name": "sessionid", "value": client.cookies["sessionid"].value, "path": "/"})
    yield Staff(browser, live_server, screenshot)
    browser.delete_all_cookies()


def recorded_learners(site, django_user_model) -> None:
    """Grace (92), Alan (85) and Barbara (60): their grades in the course, recorded through a series badge of
    another course that lists this one (the course itself has no badge yet)."""
    series = make_course_badge(
        site.templates["Python Basics"],
        OTHER_COURSE,
        criterion="series",
        series=[
            {"course_key": str(COURSE), "criterion": "passed"},
            {"course_key": str(EXAM), "criterion": "passed"},
        ],
    )
    for name, grade in (("grace", 92), ("alan", 85), ("barbara", 60)):
        learner = django_user_model.objects.create_user(name, f"{name}@example.com", first_name=name.title())
        SeriesProgress.objects.create(
            user=learner,
            course_badge=series,
            course_key=COURSE,
            met=True,
            grade=grade,
            event_time=timezone.now() - timedelta(days=3),
        )


def course_page() -> str:
    return reverse("badges_bridge:studio-course", args=[str(COURSE)])


def test_course_staff_go_from_an_empty_course_to_a_working_badge(staff, site, django_user_model):
    staff.open(course_page())
    assert "This course has no badge yet." in staff.css("main").text
    staff.shoot("studio-empty-course")
    recorded_learners(site, django_user_model)

    # Add a badge: the template picker shows the allowed templates with their images.
    staff.follow(staff.button("Add a badge"))
    cards = staff.css_all(".bb-template-card")
    assert [card.text.split("\n")[0] for card in cards] == ["Data Skills", "Python Basics"]
    staff.css(f"label[for='bb-template-{site.templates['Data Skills'].pk}']").click()
    staff.css("label[for='id_criterion_1']").click()  # course grade at least
    assert staff.css("#id_grade_threshold").is_displayed()
    assert not staff.css("#id_certificate_modes").is_displayed()
    staff.type("#id_grade_threshold", "150")
    staff.shoot("studio-add-form")

    # A threshold outside 0-100: the error summary takes the focus and links to the field.
    staff.follow(staff.button("Add the badge"))
    summary = staff.css("#bb-error-summary")
    assert "Enter a percentage from 0 to 100." in summary.text
    assert staff.driver.switch_to.active_element == summary
    assert staff.css("#id_grade_threshold-error").text == "Enter a percentage from 0 to 100."
    assert staff.css("#id_grade_threshold").get_attribute("aria-invalid") == "true"
    staff.shoot("studio-validation-error")
    summary.find_element("css selector", "a").click()
    assert staff.driver.switch_to.active_element == staff.css("#id_grade_threshold")

    # Fixed: the badge is added, and the page says who already qualifies.
    staff.type("#id_grade_threshold", "80")
    staff.follow(staff.button("Add the badge"))
    badge = CourseBadge.objects.get(course_key=COURSE)
    assert "Badge added (version 1)." in staff.message()
    assert "Reach a course grade of at least 80.00 %." in staff.css("#bb-criterion-text").text
    preview = staff.css("#bb-preview").text
    assert "2 learners already qualify." in preview
    assert "grace" in preview
    assert "alan" in preview
    staff.shoot("studio-badge-added")

    # Edit: course staff approve each award, and the badge expires after a year.
    staff.follow(staff.button("Edit"))
    staff.css("label[for='id_requires_approval']").click()
    staff.type("#id_expires_after_days", "365")
    staff.follow(staff.button("Save changes"))
    assert "Badge saved (version 2)." in staff.message()
    assert "Course staff approve each award." in staff.css("#bb-criterion-text").text
    history = staff.css("#bb-history").text
    assert "course_staff" in history
    assert "requires approval: False → True" in history

    # Backfill: the learners who already qualify wait for approval; the page shows the run's progress.
    staff.follow(staff.button("Start a backfill"))
    assert "Backfill started" in staff.message()
    assert "Done: 3 learners read, 2 badges queued" in staff.css("#bb-backfill-state").text
    queue = staff.css("#bb-approvals")
    assert "Approval queue (2 learners)" in queue.text

    # Approve Grace.
    grace = BadgeIssuance.objects.get(course_badge=badge, user__username="grace")
    staff.css(f"label[for='bb-review-{grace.pk}']").click()
    staff.shoot("studio-backfill-and-approvals")
    staff.follow(staff.button("Approve selected"))
    assert "1 learner approved." in staff.message()
    assert BadgeIssuance.objects.get(pk=grace.pk).state != IssuanceState.AWAITING_APPROVAL
    assert "Approval queue (1 learner)" in staff.css("#bb-approvals").text

    # An instructor, recognised by hand.
    instructor = django_user_model.objects.create_user("prof_ada", "ada@example.com")
    staff.follow(staff.button("Award by hand"))
    staff.type("#id_users", "prof_ada\nnobody\n")
    staff.type("#id_reason", "Course author")
    staff.follow(staff.button("Award"))
    results = staff.css("#bb-results").text
    assert "awarded" in results
    assert "unknown_user" in results
    assert BadgeIssuance.objects.filter(user=instructor, course_badge=badge).exists()
    staff.shoot("studio-manual-award")

    # Disable the badge: nothing new is issued, what was issued stays.
    staff.follow(staff.css(".bb-breadcrumbs li:nth-child(2) a"))
    staff.follow(staff.button("Disable this badge"))
    assert "Badge disabled" in staff.message()
    assert not CourseBadge.objects.get(course_key=COURSE).enabled
    assert CourseBadgeChange.objects.filter(action="disabled", changed_by=site.users["course_staff"]).exists()
    staff.shoot("studio-badge-disabled")
    staff.open(course_page())
    assert "Disabled" in staff.css(".bb-badge-card").text
    staff.shoot("studio-course-page")


def test_a_series_badge_with_the_keyboard_only(staff, site):
    from selenium.webdriver.common.keys import Keys

    staff.open(reverse("badges_bridge:studio-badge-add", args=[str(COURSE)]))
    driver = staff.driver

    # Every field has a label; every section a heading.
    for field in staff.css_all(
        "#bb-badge-form input:not([type=hidden]), #bb-badge-form select, #bb-badge-form textarea"
    ):
        field_id = field.get_attribute("id")
        assert field_id, field.get_attribute("outerHTML")
        assert staff.css_all(f"label[for='{field_id}']"), field_id

    # The keyboard reaches the skip link first, then every group and field of the form, in order.
    staff.css("body").send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Skip to main content"

    def active():
        element = driver.switch_to.active_element
        return element.get_attribute("id") or element.get_attribute("name") or element.text

    def tab_to(element_id: str, limit: int = 80) -> list[str]:
        passed = []
        for _ in range(limit):
            driver.switch_to.active_element.send_keys(Keys.TAB)
            passed.append(active())
            if passed[-1] == element_id:
                return passed
        raise AssertionError(f"the keyboard never reached {element_id}: {passed}")

    tab_to(f"bb-template-{site.templates['Data Skills'].pk}")
    driver.switch_to.active_element.send_keys(Keys.SPACE)
    tab_to("id_criterion_0")
    for _ in range(3):  # arrow keys move within the criterion group, to "A series of courses"
        driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    assert active() == "id_criterion_3"
    assert staff.css("#id_series-0-course_key").is_displayed()
    assert not staff.css("#id_grade_threshold").is_displayed()
    reached = tab_to("id_series-0-course_key")
    driver.switch_to.active_element.send_keys(str(COURSE))
    reached += tab_to("id_series-1-course_key")
    driver.switch_to.active_element.send_keys("course-v1:OrgX+CS101-EXAM+2026")
    driver.switch_to.active_element.send_keys(Keys.TAB)
    driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)  # the row's condition: "Course grade at least"
    assert staff.css("#id_series-1-criterion").get_attribute("value") == "grade_at_least"
    reached += tab_to("id_series-1-grade_threshold")
    driver.switch_to.active_element.send_keys("70")
    reached += tab_to("id_series_quantity_0")
    assert not staff.css("#id_series_required").is_displayed()
    driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)  # "At least this many of them"
    assert staff.css("#id_series_required").is_displayed()
    reached += tab_to("id_series_required")
    driver.switch_to.active_element.send_keys("1")
    reached += tab_to("id_earned_after")
    reached += tab_to("id_revoke_policy_0")
    reached += tab_to("id_expires_after_days")
    reached += tab_to("id_requires_approval")
    reached += tab_to("id_suppress_notification")
    reached += tab_to("id_evidence_0")
    reached += tab_to("id_evidence_2")
    for step in ("id_series-0-criterion", "id_series-2-criterion", "id_earned_before"):
        assert step in reached, step
    # A course's threshold is offered only for a grade condition, its modes only for a certificate.
    for hidden in ("id_series-0-grade_threshold", "id_series-0-certificate_modes", "id_series-1-certificate_modes"):
        assert hidden not in reached, hidden
    focused = driver.switch_to.active_element
    assert driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused) != "none"

    # "Add a course" adds a row and moves the focus to it.
    staff.button("Add a course").send_keys(Keys.ENTER)
    assert active() == "id_series-3-course_key"
    staff.shoot("studio-series-form")

    # Sent with the keyboard: saved as a series of the two courses.
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: CourseBadge.objects.exists())
    WebDriverWait(driver, 30).until(lambda d: "Badge added" in staff.message())
    badge = CourseBadge.objects.get(course_key=COURSE)
    assert [item["course_key"] for item in badge.series] == [str(COURSE), "course-v1:OrgX+CS101-EXAM+2026"]
    assert badge.series[1]["grade_threshold"] == "70"
    assert badge.series_required == 1

    # Text contrast of at least 4.5:1 (WCAG AA).
    for selector in ("h1", "h2", ".bb-intro", ".bb-button", ".bb-meta", ".bb-help", "a", ".bb-pill", "dt"):
        for element in staff.css_all(selector):
            if element.is_displayed() and element.text.strip():
                ratio = driver.execute_script(CONTRAST_JS, element)
                assert ratio >= 4.5, f"{selector} {element.text!r}: contrast {ratio:.2f}"


def test_the_progress_of_a_running_backfill_refreshes_itself(staff, site):
    from selenium.webdriver.support.ui import WebDriverWait

    badge = make_course_badge(site.templates["Data Skills"], COURSE)
    run = BackfillRun.objects.create(course_badge=badge, state="running", total=4, read=1, recorded=1)
    staff.open(reverse("badges_bridge:studio-badge", args=[str(COURSE), badge.pk]))
    assert "Running: 1 learners read" in staff.css("#bb-backfill-state").text
    assert staff.css("#bb-backfill-state").get_attribute("aria-live") == "polite"
    BackfillRun.objects.filter(pk=run.pk).update(state="done", read=4, recorded=3, not_met=1)
    WebDriverWait(staff.driver, 15).until(lambda d: "Done: 4 learners read" in staff.css("#bb-backfill-state").text)
    assert staff.css("#bb-backfill-bar").get_attribute("value") == "4"


def test_a_learner_cannot_open_the_page(browser, live_server, site):
    client = Client()
    client.force_login(site.users["learner"])
    browser.get(f"{live_server.url}/static/badges_bridge/studio.css")
    browser.add_cookie({"name": "sessionid", "value": client.cookies["sessionid"].value, "path": "/"})
    browser.get(f"{live_server.url}{course_page()}")
    assert "403" in browser.page_source or "Forbidden" in browser.page_source
    assert "Computer Science 101" not in browser.page_source
    browser.delete_all_cookies()
