"""The Badges app of Studio's Pages & Resources, without edx-platform: it imports, resolves and works."""

from __future__ import annotations

import importlib.metadata

import pytest
from django.test import override_settings

from badges_bridge import api, compat
from badges_bridge.course_app import BadgesCourseApp
from badges_bridge.models import BadgeIssuance, IssuanceState, RevokePolicy
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_course_badge
from tests.studio import COURSE, OTHER_COURSE, studio_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(credly, django_user_model):
    return studio_site(credly, django_user_model)


def test_the_entry_point_resolves_to_the_app():
    [entry] = [
        entry for entry in importlib.metadata.entry_points(group="openedx.course_app") if entry.name == "badges_bridge"
    ]
    assert entry.load() is BadgesCourseApp


def test_outside_edx_platform_the_app_has_the_course_app_interface():
    assert compat.course_app_base() is compat.StandaloneCourseApp
    assert issubclass(BadgesCourseApp, compat.StandaloneCourseApp)
    assert not getattr(BadgesCourseApp, "__abstractmethods__", None)
    assert BadgesCourseApp.app_id == "badges_bridge"
    assert str(BadgesCourseApp.name) == "Badges"
    assert "Credly" in str(BadgesCourseApp.description)
    assert BadgesCourseApp.documentation_links == {}
    assert BadgesCourseApp.is_available(COURSE)


def test_only_the_course_team_may_switch_and_configure_it(site):
    users = site.users
    allowed = {"enable": True, "configure": True}
    denied = {"enable": False, "configure": False}
    assert BadgesCourseApp.get_allowed_operations(COURSE, users["course_staff"]) == allowed
    assert BadgesCourseApp.get_allowed_operations(COURSE, users["global_staff"]) == allowed
    assert BadgesCourseApp.get_allowed_operations(COURSE, users["other_staff"]) == denied
    assert BadgesCourseApp.get_allowed_operations(COURSE, users["learner"]) == denied
    assert BadgesCourseApp.get_allowed_operations(COURSE) == denied
    assert BadgesCourseApp.get_allowed_operations(OTHER_COURSE, users["other_staff"]) == allowed


def test_its_switch_is_the_courses_badges_switch(site):
    staff = site.users["course_staff"]
    assert BadgesCourseApp.is_enabled(COURSE)
    assert BadgesCourseApp.set_enabled(COURSE, False, staff) is False
    assert not BadgesCourseApp.is_enabled(COURSE)
    assert not api.course_badges_enabled(COURSE)
    assert BadgesCourseApp.is_enabled(OTHER_COURSE)
    assert BadgesCourseApp.set_enabled(COURSE, True, staff) is True
    assert api.course_badges_enabled(COURSE)


def test_its_link_leads_to_the_course_page_in_studio():
    with override_settings(CMS_ROOT_URL="https://studio.example.com/"):
        link = BadgesCourseApp.legacy_link(COURSE)
    assert link == f"https://studio.example.com/badges_bridge/studio/{COURSE}/"
    with override_settings(CMS_ROOT_URL=""):
        assert BadgesCourseApp.legacy_link(COURSE) == f"/badges_bridge/studio/{COURSE}/"


def test_turned_off_it_stops_new_issuance_and_touches_nothing_issued(site, receivers, work_queue, django_user_model):
    badge = make_course_badge(site.templates["Data Skills"], COURSE, revoke_policy=RevokePolicy.CRITERION_UNMET)
    ada = django_user_model.objects.create_user("ada", "ada@example.com", first_name="Ada")
    bob = django_user_model.objects.create_user("bob", "bob@example.com", first_name="Bob")
    send.send_passing_status(ada, COURSE, True)
    issued = BadgeIssuance.objects.get(user=ada, course_badge=badge)
    BadgeIssuance.objects.filter(pk=issued.pk).update(state=IssuanceState.ISSUED)

    BadgesCourseApp.set_enabled(COURSE, False, site.users["course_staff"])
    send.send_passing_status(bob, COURSE, True)
    send.send_passing_status(ada, COURSE, False)  # would revoke under the policy, were the app on
    assert not BadgeIssuance.objects.filter(user=bob).exists()
    assert BadgeIssuance.objects.get(pk=issued.pk).state == IssuanceState.ISSUED

    BadgesCourseApp.set_enabled(COURSE, True, site.users["course_staff"])
    send.send_passing_status(bob, COURSE, True)
    assert BadgeIssuance.objects.filter(user=bob, course_badge=badge).exists()


def test_operators_manage_standalone_courses_and_roles_in_the_admin(site, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    courses = client.get("/admin/badges_bridge/standalonecourse/").content.decode()
    assert "Computer Science 101" in courses
    roles = client.get("/admin/badges_bridge/standalonecourserole/").content.decode()
    assert str(COURSE) in roles
