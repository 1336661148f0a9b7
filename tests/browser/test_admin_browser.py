"""The operator's admin in a real browser (headless Chromium): overview, ledger, a dead row, retry, revoke, forms.

Each step saves a screenshot in BADGES_BRIDGE_SCREENSHOTS_DIR (default ``test-artifacts/screenshots/``) and
checks that the page is no server error, in the browser and, for the same URL, through the test client.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from opaque_keys.edx.keys import CourseKey

from badges_bridge import tasks
from badges_bridge.models import BadgeIssuance, CourseBadge, IssuanceState, RejectedEvent
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.browser.conftest import SCREENSHOTS, SHOT_NUMBERS, WIDTH, click_and_wait_for_the_next_page

COURSE = CourseKey.from_string("course-v1:DemoX+Browser+2026")

pytestmark = pytest.mark.django_db(transaction=True)


class Operator:
    """An operator at the browser, who checks every page and keeps a screenshot of it."""

    def __init__(self, driver, live_server, user) -> None:
        self.driver = driver
        self.base = live_server.url
        self.client = Client()
        self.client.force_login(user)
        self.pages: list[str] = []

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def login(self, username: str, password: str) -> None:
        self.driver.get(f"{self.base}{reverse('admin:login')}")
        self.find("#id_username").send_keys(username)
        self.find("#id_password").send_keys(password)
        self.find("input[type=submit]").click()
        self.find("#user-tools")

    def follow(self, css: str, shot: str) -> None:
        """Click what loads a new page (a link, a form's button), wait until it replaced this one, and check it."""
        click_and_wait_for_the_next_page(self.driver, self.find(css))
        self.check(shot)

    def open(self, path: str, shot: str) -> None:
        self.driver.get(f"{self.base}{path}")
        self.check(shot)

    def check(self, shot: str) -> None:
        """The page is no server error (browser and test client), fits the width, and is kept as a screenshot."""
        body = self.find("body").text
        assert "Server Error (500)" not in self.driver.title + body, shot
        assert "Traceback" not in body, shot
        path = self.driver.current_url.removeprefix(self.base)
        if "/add/" not in path:  # a GET of an add page is harmless, but only its first visit is checked here
            assert self.client.get(path).status_code == 200, path
        self.pages.append(path)
        height = self.driver.execute_script("return document.body.scrollHeight")
        self.driver.set_window_size(WIDTH, min(max(height + 120, 700), 4000))
        self.driver.save_screenshot(str(SCREENSHOTS / f"{next(SHOT_NUMBERS):02d}-{shot}.png"))
        self.driver.set_window_size(WIDTH, 1000)

    def fits(self) -> None:
        """The result list's last column is within the window: nothing off screen at WIDTH."""
        right, window = self.driver.execute_script(
            "var row = document.querySelector('#result_list thead tr');"
            "return [row.lastElementChild.getBoundingClientRect().right, window.innerWidth];"
        )
        assert right <= window, f"the last column ends at {right}px, past the {window}px window"

    def messages(self) -> list[str]:
        return [item.text for item in self.find_all("ul.messagelist li")]


@pytest.fixture
def operator(browser, live_server, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    person = Operator(browser, live_server, user)
    person.login("root", "pw")
    yield person
    browser.delete_all_cookies()


@pytest.fixture
def ledger(credly, django_user_model, receivers):
    """A course badge at the fake Credly with one issued badge and one row dead for want of an e-mail address."""
    badge = make_course_badge(make_template(make_account(credly, name="Credly main"), credly, "Data Skills"), COURSE)
    ada = django_user_model.objects.create_user("ada", "ada@example.com", first_name="Ada", last_name="Lovelace")
    nomail = django_user_model.objects.create_user("nomail", "", first_name="No", last_name="Mail")
    send.send_passing_status(ada, COURSE, True)
    send.send_passing_status(nomail, COURSE, True)
    issued = BadgeIssuance.objects.get(user=ada)
    dead = BadgeIssuance.objects.get(user=nomail)
    assert (issued.state, dead.state) == (IssuanceState.ISSUED, IssuanceState.DEAD)
    tasks.redrive()  # as Celery beat would: their latest runs show on the overview
    tasks.check_drift()
    return {"badge": badge, "issued": issued, "dead": dead, "nomail": nomail}


def test_an_operator_finds_a_dead_row_understands_it_and_retries_it(operator, ledger):
    operator.open(reverse("admin:badges_bridge_healthoverview_changelist"), "health-overview")
    assert "1 thing needs an operator" in operator.find("#bb-verdict").text
    reasons = operator.find("#bb-dead-reasons").text
    assert "The learner has no e-mail address" in reasons
    assert "Add an e-mail address to the learner's account" in reasons

    operator.follow("#bb-dead-reasons a", "ledger-dead-rows")
    operator.fits()
    rows = operator.find_all("#result_list tbody tr")
    assert len(rows) == 1
    assert "Dead: could not issue" in rows[0].text

    operator.follow("#result_list tbody tr th a", "dead-row")
    page = operator.find("#content").text
    assert "Add an e-mail address to the learner's account, then run Retry now on the row." in page
    assert "Issuing → Dead (needs an operator)" in page
    assert "UTC" in page

    operator.follow("#bb-row-actions input[value='Retry now']", "retry-blocked")
    assert any("not retried, the cause is still there" in message for message in operator.messages())
    dead = ledger["dead"]
    dead.refresh_from_db()
    assert dead.state == IssuanceState.DEAD

    ledger["nomail"].email = "nomail@example.com"
    ledger["nomail"].save()
    operator.follow("#bb-row-actions input[value='Retry now']", "retry-done")
    assert any("issued: issued" in message for message in operator.messages())
    dead.refresh_from_db()
    assert dead.state == IssuanceState.ISSUED


def test_an_operator_revokes_a_badge_after_confirming_with_a_reason(operator, ledger, credly):
    issued = ledger["issued"]
    operator.open(reverse("admin:badges_bridge_badgeissuance_change", args=[issued.pk]), "issued-row")
    operator.follow("#bb-row-actions input[value='Revoke the badge…']", "revoke-confirmation")
    assert "Revoke badges: are you sure?" in operator.find("#content").text
    issued.refresh_from_db()
    assert issued.state == IssuanceState.ISSUED

    operator.find("#id_reason").send_keys("Awarded by mistake")
    operator.follow("input[value='Yes, revoke']", "revoke-done")
    assert any("revoked: revoked at the provider" in message for message in operator.messages())
    issued.refresh_from_db()
    assert (issued.state, issued.revoke_reason) == (IssuanceState.REVOKED, "Awarded by mistake")
    assert credly.live_awards(ledger["badge"].template.external_id, "ada@example.com") == []


def test_a_malformed_course_key_is_explained_and_the_course_badges_fit_the_screen(operator, ledger):
    operator.open(reverse("admin:badges_bridge_coursebadge_changelist"), "course-badges")
    operator.fits()
    operator.open(reverse("admin:badges_bridge_coursebadge_add"), "course-badge-add")
    from selenium.webdriver.support.ui import Select

    assert not operator.find(".field-grade_threshold").is_displayed()
    Select(operator.find("#id_criterion")).select_by_value("grade_at_least")
    assert operator.find(".field-grade_threshold").is_displayed()
    operator.find("#id_course_key").send_keys("DemoX Stats 2026")
    Select(operator.find("#id_template")).select_by_index(1)
    operator.find("#id_grade_threshold").send_keys("0.8")
    operator.follow("input[name=_save]", "course-key-error")
    errors = operator.find("#content").text
    assert "A course key looks like 'course-v1:DemoX+Stats+2026'" in errors
    assert "0.8 means 0.8 percent, not 80 percent" in errors
    assert operator.find("#id_course_key").get_attribute("value") == "DemoX Stats 2026"
    assert CourseBadge.objects.count() == 1


def test_every_list_of_the_admin_opens_and_fits(operator, ledger):
    RejectedEvent.objects.create(
        event_id="e-1",
        event_type="org.openedx.learning.course.persistent_grade_summary.changed.v1",
        course_key=str(COURSE),
        reason="invalid payload: grade.percent_grade 1.37 is outside 0..1",
    )
    for name in ("badgeissuance", "provideraccount", "badgetemplate", "rejectedevent"):
        operator.open(reverse(f"admin:badges_bridge_{name}_changelist"), f"list-{name}")
        operator.fits()
    operator.open(
        reverse("admin:badges_bridge_provideraccount_change", args=[ledger["badge"].template.account_id]), "account"
    )
