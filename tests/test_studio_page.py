"""The course team's Studio page: permissions, CSRF, validation messages, and the set-up flows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from badges_bridge.models import (
    AuditEntry,
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    CourseBadgeChange,
    CourseSettings,
    Criterion,
    IssuanceState,
    Origin,
    RevokePolicy,
)
from badges_bridge.testing.setup import make_course_badge
from tests.studio import (
    COURSE,
    EXAM,
    FOREIGN_COURSE,
    OTHER_COURSE,
    badge_form,
    studio_site,
)

pytestmark = pytest.mark.django_db

C = str(COURSE)


@pytest.fixture
def site(credly, django_user_model):
    return studio_site(credly, django_user_model)


@pytest.fixture
def badge(site):
    """A course badge of the course, with no award yet."""
    return make_course_badge(site.templates["Data Skills"], COURSE)


def client_for(site, who: str | None, **options) -> Client:
    client = Client(**options)
    if who:
        client.force_login(site.users[who])
    return client


def url(name: str, *args, course: str = C) -> str:
    return reverse(f"badges_bridge:studio-{name}", args=[course, *args])


def error_of(response, element_id: str) -> str:
    """The text of the error message element with this id (empty when there is none)."""
    html = response.content.decode()
    match = re.search(rf'<p class="bb-error" id="{re.escape(element_id)}">(.*?)</p>', html, re.S)
    return match.group(1).strip() if match else ""


def ledger_row(badge: CourseBadge, user, state: str = IssuanceState.ISSUED, **fields) -> BadgeIssuance:
    return BadgeIssuance.objects.create(user=user, course_badge=badge, state=state, **fields)


# -- permissions ---------------------------------------------------------------------------------------------------


def pages(site, badge) -> list[tuple[str, str, dict]]:
    """(method, url, data) of every page and form of the course's set-up."""
    row = ledger_row(badge, site.users["learner"])
    form = badge_form(site.templates["Python Basics"])
    return [
        ("get", url("course"), {}),
        ("post", url("course-switch"), {"enabled": "0"}),
        ("get", url("badge-add"), {}),
        ("post", url("badge-add"), form),
        ("get", url("badge", badge.pk), {}),
        ("get", url("badge-edit", badge.pk), {}),
        ("post", url("badge-edit", badge.pk), badge_form(site.templates["Data Skills"], criterion="certificate")),
        ("post", url("badge-enable", badge.pk), {"enabled": "0"}),
        ("get", url("badge-delete", badge.pk), {}),
        ("post", url("badge-delete", badge.pk), {}),
        ("post", url("badge-backfill", badge.pk), {}),
        ("get", url("badge-backfill-status", badge.pk), {}),
        ("post", url("badge-review", badge.pk), {"decision": "approve", "issuances": [row.pk]}),
        ("get", url("badge-award", badge.pk), {}),
        ("post", url("badge-award", badge.pk), {"users": "learner", "reason": "test"}),
        ("get", url("issuance-revoke", badge.pk, row.pk), {}),
        ("post", url("issuance-revoke", badge.pk, row.pk), {"reason": "mistake"}),
    ]


def state() -> tuple:
    """Everything a page could change."""
    return (
        list(CourseBadge.objects.values_list("pk", "version", "enabled", "criterion")),
        CourseBadgeChange.objects.count(),
        list(BadgeIssuance.objects.values_list("pk", "state")),
        list(CourseSettings.objects.values_list("course_key", "badges_enabled")),
    )


@pytest.mark.parametrize("who", [None, "learner", "other_staff"])
def test_nobody_but_the_course_team_reads_or_changes_anything(site, badge, who):
    client = client_for(site, who)
    for method, path, data in pages(site, badge):
        before = state()
        response = getattr(client, method)(path, data)
        if who is None:
            assert response.status_code == 302, (method, path)
            assert response["Location"].startswith("/login?next="), (method, path)
        else:
            assert response.status_code == 403, (method, path, response.status_code)
            assert "Data Skills" not in response.content.decode(), (method, path)
        assert state() == before, (who, method, path)


@pytest.mark.parametrize("who", ["course_staff", "global_staff"])
def test_the_course_team_and_global_staff_reach_every_page(site, badge, who):
    client = client_for(site, who)
    for method, path, data in pages(site, badge):
        response = getattr(client, method)(path, data)
        assert response.status_code in (200, 302, 400), (method, path, response.status_code)
        if response.status_code == 302:
            assert not response["Location"].startswith("/login"), (method, path)


def test_global_staff_see_every_course(site):
    client = client_for(site, "global_staff")
    for course in (C, str(OTHER_COURSE), str(FOREIGN_COURSE)):
        assert client.get(url("course", course=course)).status_code == 200


def test_staff_of_a_course_see_only_theirs(site):
    client = client_for(site, "other_staff")
    assert client.get(url("course", course=str(OTHER_COURSE))).status_code == 200
    assert client.get(url("course")).status_code == 403


@pytest.mark.parametrize("course", ["course-v1:OrgX+NOPE+2026", "not-a-course-key", "course-v1:OrgX"])
def test_an_unknown_or_malformed_course_is_not_found(site, course):
    client = client_for(site, "global_staff")
    assert client.get(url("course", course=course)).status_code == 404
    assert client.get(url("badge-add", course=course)).status_code == 404


def test_anonymous_visitors_sign_in_before_anything_is_said_about_a_course(site):
    response = Client().get(url("course", course="course-v1:OrgX+NOPE+2026"))
    assert response.status_code == 302


def test_a_badge_of_another_course_is_not_found(site):
    other = make_course_badge(site.templates["Data Skills"], OTHER_COURSE)
    client = client_for(site, "course_staff")
    for name in ("badge", "badge-edit", "badge-delete", "badge-award", "badge-backfill-status"):
        assert client.get(url(name, other.pk)).status_code == 404, name
    assert client.post(url("badge-enable", other.pk), {"enabled": "0"}).status_code == 404
    assert CourseBadge.objects.get(pk=other.pk).enabled


def test_every_change_needs_the_csrf_token(site, badge):
    client = client_for(site, "course_staff", enforce_csrf_checks=True)
    for method, path, data in pages(site, badge):
        if method != "post":
            continue
        before = state()
        assert client.post(path, data).status_code == 403, path
        assert state() == before, path


def test_the_forms_carry_the_csrf_token(site, badge):
    ledger_row(badge, site.users["learner"], IssuanceState.AWAITING_APPROVAL)
    client = client_for(site, "course_staff", enforce_csrf_checks=True)
    for path in (url("course"), url("badge", badge.pk), url("badge-edit", badge.pk), url("badge-award", badge.pk)):
        html = client.get(path).content.decode()
        forms = html.count('method="post"')
        assert forms, path
        assert html.count('name="csrfmiddlewaretoken"') == forms, path


# -- the course page -------------------------------------------------------------------------------------------------


def test_the_course_page_lists_the_badges_with_their_counts(site, badge):
    make_course_badge(site.templates["Python Basics"], COURSE, enabled=False, criterion=Criterion.CERTIFICATE)
    for state_, count in ((IssuanceState.ISSUED, 2), (IssuanceState.PENDING, 1), (IssuanceState.DEAD, 1)):
        for number in range(count):
            user = type(site.users["learner"]).objects.create_user(f"{state_}{number}")
            ledger_row(badge, user, state_)
    html = client_for(site, "course_staff").get(url("course")).content.decode()
    assert "Computer Science 101" in html
    assert "Data Skills" in html
    assert "Python Basics" in html
    assert "Pass the course. Never revoked." in html
    assert "Earn a certificate (any mode)." in html
    assert "Disabled" in html
    assert "Enabled" in html
    counts = html.split("Data Skills", 1)[1].split("</dl>", 1)[0]
    for label, count in (("Issued", 2), ("Pending", 1), ("Awaiting approval", 0), ("Failed", 0), ("Dead", 1)):
        assert f"<dt>{label}</dt><dd>{count}</dd>" in counts, label
    assert html.count('src="data:image/svg+xml') == 2
    assert f'href="{url("badge", badge.pk)}"' in html


def test_a_course_without_templates_says_whom_to_ask(site):
    client = client_for(site, "global_staff")
    assert "No badge template available yet" not in client.get(url("course")).content.decode()
    BadgeTemplate.objects.filter(account__name="Credly main").update(state=BadgeTemplate.State.ARCHIVED)
    html = client.get(url("course")).content.decode()
    assert "No badge template available yet" in html
    assert "organisation OrgX" in html
    assert url("badge-add") not in html
    assert (
        "No badge template available yet" not in client.get(url("course", course=str(FOREIGN_COURSE))).content.decode()
    )


# -- add and edit: validation ----------------------------------------------------------------------------------------


def post_form(site, data, badge=None, who="course_staff"):
    path = url("badge-edit", badge.pk) if badge else url("badge-add")
    return client_for(site, who).post(path, data)


def assert_refused(response, field_id: str, message: str) -> None:
    assert response.status_code == 400
    assert message in error_of(response, field_id), response.content.decode()[:3000]
    html = response.content.decode()
    assert 'id="bb-error-summary"' in html
    assert 'role="alert"' in html
    assert message in html.split('id="bb-error-summary"', 1)[1].split("</div>", 1)[0]


@pytest.mark.parametrize("threshold", ["150", "-1", "100.01"])
def test_a_threshold_outside_0_to_100_is_refused_on_its_field(site, threshold):
    data = badge_form(site.templates["Data Skills"], criterion="grade_at_least", grade_threshold=threshold)
    response = post_form(site, data)
    assert_refused(response, "id_grade_threshold-error", "Enter a percentage from 0 to 100.")
    assert 'aria-invalid="true"' in response.content.decode()
    assert 'aria-describedby="id_grade_threshold-help id_grade_threshold-error"' in response.content.decode()
    assert not CourseBadge.objects.exists()


def test_a_threshold_that_looks_like_a_fraction_needs_a_confirmation(site):
    data = badge_form(site.templates["Data Skills"], criterion="grade_at_least", grade_threshold="0.8")
    response = post_form(site, data)
    assert_refused(response, "id_grade_threshold-error", "0.8 means 0.8 percent, not 80 percent")
    assert 'name="confirm_small_threshold"' in response.content.decode()
    assert post_form(site, {**data, "confirm_small_threshold": "on"}).status_code == 302
    assert CourseBadge.objects.get().grade_threshold == Decimal("0.8")


def series_row(course, criterion="passed", threshold="", modes=""):
    return {"course_key": str(course), "criterion": criterion, "grade_threshold": threshold, "certificate_modes": modes}


@pytest.mark.parametrize(
    ("course", "message"),
    [
        ("course-v1:OrgX+NOPE+2026", "course-v1:OrgX+NOPE+2026 is not a course of this site."),
        (str(FOREIGN_COURSE), "belongs to organisation OtherU; a series may only hold courses of OrgX."),
        ("OrgX CS 2026", "OrgX CS 2026 is not a course key"),
    ],
)
def test_a_series_course_that_is_unknown_or_of_another_organisation_is_refused(site, course, message):
    rows = [series_row(COURSE), series_row(course)]
    response = post_form(site, badge_form(site.templates["Data Skills"], rows, criterion="series"))
    assert_refused(response, "bb-series-error", message)
    html = response.content.decode()
    assert html.count('aria-describedby="bb-series-error"') == 1  # the row of that course is marked
    assert 'href="#bb-series"' in html


def test_an_empty_series_is_refused(site):
    response = post_form(site, badge_form(site.templates["Data Skills"], criterion="series"))
    assert_refused(response, "bb-series-error", "Add at least one course to the series.")


def test_n_larger_than_the_series_is_refused_on_its_field(site):
    rows = [series_row(COURSE), series_row(EXAM, "grade_at_least", "70")]
    data = badge_form(
        site.templates["Data Skills"], rows, criterion="series", series_quantity="some", series_required="3"
    )
    response = post_form(site, data)
    assert_refused(response, "id_series_required-error", "Choose between 1 and 2, the number of courses in the series.")


def test_at_least_n_needs_a_number(site):
    rows = [series_row(COURSE), series_row(EXAM)]
    data = badge_form(site.templates["Data Skills"], rows, criterion="series", series_quantity="some")
    assert_refused(post_form(site, data), "id_series_required-error", "Enter how many courses of the series")


def test_a_series_course_with_a_bad_threshold_is_refused(site):
    rows = [series_row(COURSE), series_row(EXAM, "grade_at_least", "")]
    response = post_form(site, badge_form(site.templates["Data Skills"], rows, criterion="series"))
    assert_refused(response, "bb-series-error", "the grade threshold must be a percentage from 0 to 100")


def test_an_archived_template_is_refused_on_its_field(site):
    response = post_form(site, badge_form(site.templates["Old Badge"]))
    assert_refused(response, "id_template-error", "This template is archived at the provider and cannot issue badges.")
    assert "Old Badge" not in response.content.decode().split("bb-template-cards", 1)[1]  # not offered either


def test_a_template_of_an_account_the_organisation_may_not_use_is_refused(site):
    response = post_form(site, badge_form(site.templates["Biology Star"]))
    assert_refused(
        response, "id_template-error", "Account Credly OtherU may not be used by courses of organization OrgX."
    )


def test_a_window_that_ends_before_it_starts_is_refused(site):
    data = badge_form(site.templates["Data Skills"], earned_after="2026-09-01T00:00", earned_before="2026-08-01T00:00")
    assert_refused(post_form(site, data), "id_earned_before-error", "The end of the window must come after its start.")


def test_a_template_already_used_by_the_course_is_refused(site, badge):
    response = post_form(site, badge_form(site.templates["Data Skills"]))
    assert_refused(response, "id_template-error", "This course already has a badge with this template")


def test_no_template_chosen(site):
    data = badge_form(site.templates["Data Skills"])
    del data["template"]
    assert_refused(post_form(site, data), "id_template-error", "Choose the badge template to award.")


def test_every_input_has_a_label(site, badge):
    html = client_for(site, "course_staff").get(url("badge-edit", badge.pk)).content.decode()
    form = html.split('id="bb-badge-form"', 1)[1].split("</form>", 1)[0]
    form = form.split('<template id="bb-series-empty">', 1)[0] + form.split("</template>", 1)[1]
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', form)
    types = re.findall(r'<input[^>]*type="(hidden)"[^>]*id="([^"]+)"', form)
    hidden = {element_id for _type, element_id in types}
    visible = [element_id for element_id in ids if element_id not in hidden]
    assert len(visible) > 25
    for element_id in visible:
        assert f'for="{element_id}"' in form, element_id


# -- add and edit: flows ---------------------------------------------------------------------------------------------


def test_the_add_form_offers_the_allowed_templates_with_their_images(site):
    html = client_for(site, "course_staff").get(url("badge-add")).content.decode()
    cards = html.split('class="bb-template-cards"', 1)[1].split("</ul>", 1)[0]
    assert "Data Skills" in cards
    assert "Python Basics" in cards
    assert "Old Badge" not in cards
    assert "Biology Star" not in cards
    assert cards.count('src="data:image/svg+xml') == 2
    assert cards.count('type="radio"') == 2


def test_course_staff_add_a_badge_and_the_history_says_who_and_when(site):
    data = badge_form(
        site.templates["Data Skills"],
        criterion="grade_at_least",
        grade_threshold="80",
        earned_after="2026-01-01T00:00",
        revoke_policy="criterion_unmet",
        expires_after_days="365",
        requires_approval="on",
        evidence=["grade", "course"],
        suppress_notification="on",
    )
    response = post_form(site, data)
    badge = CourseBadge.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("badge", badge.pk) + "?preview=1#bb-preview"
    assert (badge.course_key, badge.template, badge.criterion) == (
        COURSE,
        site.templates["Data Skills"],
        "grade_at_least",
    )
    assert badge.grade_threshold == 80
    assert badge.earned_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert badge.earned_before is None
    assert (badge.revoke_policy, badge.expires_after_days) == (RevokePolicy.CRITERION_UNMET, 365)
    assert badge.requires_approval
    assert badge.suppress_notification
    assert badge.evidence == "grade,course"
    assert badge.changed_by == site.users["course_staff"]
    [change] = CourseBadgeChange.objects.all()
    assert (change.action, change.version, change.changed_by) == ("created", 1, site.users["course_staff"])
    assert change.changes["grade_threshold"] == [None, "80"]
    assert change.changes["criterion"] == [None, "grade_at_least"]


def test_a_series_badge_is_saved_with_its_rows(site):
    rows = [
        series_row(COURSE, "passed"),
        series_row(EXAM, "grade_at_least", "70"),
        series_row(OTHER_COURSE, "certificate", "", "verified, professional"),
    ]
    data = badge_form(
        site.templates["Data Skills"], rows, criterion="series", series_quantity="some", series_required="2"
    )
    assert post_form(site, data).status_code == 302
    badge = CourseBadge.objects.get()
    assert badge.series == [
        {"course_key": str(COURSE), "criterion": "passed", "grade_threshold": None, "certificate_modes": []},
        {"course_key": str(EXAM), "criterion": "grade_at_least", "grade_threshold": "70", "certificate_modes": []},
        {
            "course_key": str(OTHER_COURSE),
            "criterion": "certificate",
            "grade_threshold": None,
            "certificate_modes": ["verified", "professional"],
        },
    ]
    assert badge.series_required == 2
    edit = client_for(site, "course_staff").get(url("badge-edit", badge.pk)).content.decode()
    assert f'value="{EXAM}"' in edit
    assert 'value="verified, professional"' in edit
    assert re.search(r'name="series_quantity" value="some"[^>]*checked', edit)


def test_parameters_of_another_criterion_are_dropped(site):
    rows = [series_row(COURSE)]
    data = badge_form(site.templates["Data Skills"], rows, grade_threshold="80", certificate_modes="verified")
    assert post_form(site, data).status_code == 302
    badge = CourseBadge.objects.get()
    assert (badge.criterion, badge.grade_threshold, badge.certificate_modes, badge.series) == ("passed", None, "", [])


def test_editing_raises_the_version_and_records_what_changed(site, badge):
    data = badge_form(site.templates["Data Skills"], criterion="certificate", certificate_modes="verified")
    response = post_form(site, data, badge)
    assert response["Location"] == url("badge", badge.pk) + "?preview=1#bb-preview"
    badge.refresh_from_db()
    assert (badge.version, badge.criterion, badge.certificate_modes) == (2, "certificate", "verified")
    change = CourseBadgeChange.objects.get()
    assert change.action == "changed"
    assert change.version == 2
    assert change.changed_by == site.users["course_staff"]
    assert change.changes == {"criterion": ["passed", "certificate"], "certificate_modes": ["", "verified"]}
    page = client_for(site, "course_staff").get(url("badge", badge.pk)).content.decode()
    history = page.split('id="bb-history"', 1)[1]
    assert "course_staff" in history
    assert "criterion: passed → certificate" in history


def test_an_edit_does_not_overwrite_a_change_saved_meanwhile(site, badge):
    client = client_for(site, "course_staff")
    assert 'name="seen_version" value="1"' in client.get(url("badge-edit", badge.pk)).content.decode()
    other = client_for(site, "global_staff")
    other.post(
        url("badge-edit", badge.pk),
        badge_form(site.templates["Data Skills"], expires_after_days="30", seen_version="1"),
    )
    response = client.post(
        url("badge-edit", badge.pk),
        badge_form(site.templates["Data Skills"], criterion="certificate", seen_version="1"),
    )
    assert response.status_code == 400
    assert "Someone else saved this badge while you were editing it (it is now version 2)" in response.content.decode()
    badge.refresh_from_db()
    assert (badge.version, badge.criterion, badge.expires_after_days) == (2, "passed", 30)


def test_an_edit_outside_the_criterion_shows_no_new_preview(site, badge):
    response = post_form(site, badge_form(site.templates["Data Skills"], expires_after_days="30"), badge)
    assert response["Location"] == url("badge", badge.pk)


def test_saving_without_a_change_records_nothing(site, badge):
    response = post_form(site, badge_form(site.templates["Data Skills"]), badge)
    assert response.status_code == 302
    badge.refresh_from_db()
    assert badge.version == 1
    assert not CourseBadgeChange.objects.exists()


def test_the_template_of_a_badge_with_awards_cannot_change(site, badge):
    ledger_row(badge, site.users["learner"])
    page = client_for(site, "course_staff").get(url("badge-edit", badge.pk)).content.decode()
    assert "so it cannot change" in page
    assert re.search(rf'value="{site.templates["Python Basics"].pk}"\s*\n?\s*disabled', page)
    response = post_form(site, badge_form(site.templates["Python Basics"]), badge)
    assert_refused(response, "id_template-error", "Badges were already issued for this course badge")


def test_an_archived_template_kept_unchanged_can_still_be_saved(site, badge):
    site.templates["Data Skills"].state = "archived"
    site.templates["Data Skills"].save()
    response = post_form(site, badge_form(site.templates["Data Skills"], expires_after_days="10"), badge)
    assert response.status_code == 302
    badge.refresh_from_db()
    assert badge.expires_after_days == 10


# -- disable, enable, delete -----------------------------------------------------------------------------------------


def test_disable_and_enable_a_badge(site, badge):
    client = client_for(site, "course_staff")
    response = client.post(url("badge-enable", badge.pk), {"enabled": "0"}, follow=True)
    badge.refresh_from_db()
    assert not badge.enabled
    assert badge.version == 2
    assert "Badge disabled" in response.content.decode()
    client.post(url("badge-enable", badge.pk), {"enabled": "1"})
    badge.refresh_from_db()
    assert badge.enabled
    assert badge.version == 3
    assert list(CourseBadgeChange.objects.order_by("id").values_list("action", flat=True)) == ["disabled", "enabled"]


def test_a_badge_without_awards_is_deleted_and_its_history_kept(site, badge):
    client = client_for(site, "course_staff")
    assert "Delete the badge" in client.get(url("badge-delete", badge.pk)).content.decode()
    response = client.post(url("badge-delete", badge.pk), follow=True)
    assert not CourseBadge.objects.exists()
    assert "Badge Data Skills deleted." in response.content.decode()
    change = CourseBadgeChange.objects.get()
    assert (change.action, change.course_badge, change.changed_by) == ("deleted", None, site.users["course_staff"])


def test_a_badge_with_awards_can_only_be_disabled(site, badge):
    ledger_row(badge, site.users["learner"])
    client = client_for(site, "course_staff")
    page = client.get(url("badge", badge.pk)).content.decode()
    assert url("badge-delete", badge.pk) not in page
    assert "so it cannot be deleted" in page
    assert "Delete the badge" not in client.get(url("badge-delete", badge.pk)).content.decode()
    response = client.post(url("badge-delete", badge.pk), follow=True)
    assert CourseBadge.objects.filter(pk=badge.pk).exists()
    assert "cannot be deleted; disable it instead" in response.content.decode()


# -- manual awards and revoke ----------------------------------------------------------------------------------------


def test_course_staff_award_a_badge_by_hand_with_a_result_per_line(site, badge, django_user_model, work_queue):
    instructor = django_user_model.objects.create_user("prof", "prof@example.com")
    client = client_for(site, "course_staff")
    lines = "prof\nnobody\nbad value!\nlearner@example.com\nprof\n"
    response = client.post(url("badge-award", badge.pk), {"users": lines, "reason": "course author"})
    html = response.content.decode()
    assert response.status_code == 200
    for result in ("awarded", "unknown_user", "bad_line", "duplicate_line"):
        assert f">{result}<" in html, result
    assert "2 awarded" in html
    row = BadgeIssuance.objects.get(user=instructor)
    assert row.origin == Origin.MANUAL
    entry = AuditEntry.objects.filter(issuance=row).first()
    assert entry.actor == f"staff:{site.users['course_staff'].pk}"
    assert "course author" in entry.message


def test_a_csv_file_is_read_and_a_bad_file_refused(site, badge, work_queue):
    client = client_for(site, "course_staff")
    upload = SimpleUploadedFile("learners.csv", b"username\nlearner\n,\n")
    html = client.post(url("badge-award", badge.pk), {"file": upload}).content.decode()
    assert ">awarded<" in html
    assert ">bad_line<" in html
    response = client.post(url("badge-award", badge.pk), {"users": "", "reason": ""})
    assert response.status_code == 400
    assert "Paste learners or choose a file." in response.content.decode()


def test_course_staff_revoke_a_learners_badge_with_a_reason(site, badge, work_queue):
    row = ledger_row(badge, site.users["learner"], external_id="abc")
    client = client_for(site, "course_staff")
    page = client.get(url("badge", badge.pk)).content.decode()
    assert url("issuance-revoke", badge.pk, row.pk) in page
    response = client.post(url("issuance-revoke", badge.pk, row.pk), {"reason": ""})
    assert response.status_code == 400
    assert "Give the reason for revoking the badge." in error_of(response, "id_reason-error")
    response = client.post(url("issuance-revoke", badge.pk, row.pk), {"reason": "awarded by mistake"}, follow=True)
    row.refresh_from_db()
    assert row.revoke_reason == "awarded by mistake"
    assert row.state in (IssuanceState.REVOKE_PENDING, IssuanceState.REVOKED)
    assert AuditEntry.objects.filter(issuance=row, actor=f"staff:{site.users['course_staff'].pk}").exists()
    assert "Revoke of learner" in response.content.decode()


def test_a_row_of_another_badge_cannot_be_revoked_here(site, badge):
    other = make_course_badge(site.templates["Python Basics"], COURSE)
    row = ledger_row(other, site.users["learner"])
    client = client_for(site, "course_staff")
    assert client.post(url("issuance-revoke", badge.pk, row.pk), {"reason": "x"}).status_code == 404


def test_the_awards_are_paginated(site, badge, django_user_model):
    for number in range(30):
        ledger_row(badge, django_user_model.objects.create_user(f"learner{number:02d}"))
    client = client_for(site, "course_staff")
    first = client.get(url("badge", badge.pk)).content.decode()
    assert "Page 1 of 2" in first
    assert first.count("Revoke<span") == 25
    second = client.get(url("badge", badge.pk) + "?page=2").content.decode()
    assert second.count("Revoke<span") == 5
