"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
from django.core.cache import cache

import tests.celery_app  # noqa: F401 - makes the test Celery app the default one


@pytest.fixture(autouse=True)
def _clear_cache():
    """Each test starts with an empty cache (the per-course configuration lives there) and no course snapshot."""
    from badges_bridge import config_cache

    cache.clear()
    config_cache.snapshot.forget()
    yield
    cache.clear()
    config_cache.snapshot.forget()


@pytest.fixture(scope="session")
def credly_server():
    """The fake Credly, served once per session."""
    from badges_bridge.testing.fake_credly import CredlyHarness

    harness = CredlyHarness().start()
    yield harness
    harness.stop()


@pytest.fixture
def credly(credly_server):
    """The fake Credly, emptied for this test."""
    credly_server.reset()
    return credly_server


@pytest.fixture(scope="session")
def accredible_server():
    """The fake Accredible, served once per session."""
    from badges_bridge.testing.fake_accredible import AccredibleHarness

    harness = AccredibleHarness().start()
    yield harness
    harness.stop()


@pytest.fixture
def accredible(accredible_server):
    """The fake Accredible, emptied for this test."""
    accredible_server.reset()
    return accredible_server


class DeferredQueue:
    """Stands in for the broker: queued work waits until the test delivers it.

    Tests decide when queued tasks run, in which order, and whether a message is
    lost or delivered twice; the tasks themselves run for real.
    """

    def __init__(self) -> None:
        self.pending: list = []
        #: Messages queued with a countdown: delivered only by ``run(delayed=True)``.
        self.delayed: list = []

    def enqueue(self, work, countdown: float | None = None) -> bool:
        """Replaces ``badges_bridge.tasks.enqueue``: keep the message."""
        (self.delayed if countdown else self.pending).append(work)
        return True

    def run(self, count: int | None = None, *, delayed: bool = False, limit: int = 100) -> int:
        """Deliver ``count`` messages (all, by default, including those they queue); return how many ran.

        ``delayed`` first makes the messages queued with a countdown due.
        """
        from badges_bridge.tasks import TASKS

        if delayed:
            self.pending += self.delayed
            self.delayed = []
        ran = 0
        while self.pending and (count is None or ran < count):
            assert ran < limit, f"the queue did not drain after {limit} tasks"
            work = self.pending.pop(0)
            TASKS[work.operation](work.issuance_id)
            ran += 1
        return ran

    def lose(self) -> None:
        """Drop every queued message (a broker that lost them)."""
        self.pending.clear()
        self.delayed.clear()


@pytest.fixture
def work_queue(monkeypatch):
    """A deferred broker for the plugin's tasks (see DeferredQueue)."""
    queue = DeferredQueue()
    monkeypatch.setattr("badges_bridge.tasks.enqueue", queue.enqueue)
    return queue


@pytest.fixture
def receivers():
    """Connect the plugin's receivers to the openedx-events signals, as the plugin machinery does."""
    from badges_bridge.testing.events import plugin_receivers_connected

    with plugin_receivers_connected():
        yield


@pytest.fixture
def learner(django_user_model):
    """A learner with a name and an e-mail address."""
    return django_user_model.objects.create_user(
        username="ada", email="ada@example.com", first_name="Ada", last_name="Lovelace", password="x"
    )


@pytest.fixture
def deliver(django_capture_on_commit_callbacks):
    """Call ``func`` and commit: what it queued on commit runs (tasks go to the deferred broker, or run eagerly)."""

    def run(func, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(*args, **kwargs)

    return run


@pytest.fixture
def platform(monkeypatch):
    """The LMS's view of every course, faked: its enrolled learners and their grades and certificates, by user id.

    Patches the compat reads that stream enrolments and read standings in bulk, as inside the LMS.
    """
    from badges_bridge.data import CourseStanding

    class Platform:
        def __init__(self):
            self.enrolled: list[int] = []
            self.grades: dict = {}
            self.certificates: dict = {}

        def chunks(self, course_key, chunk_size: int = 1000):
            ids = sorted(self.enrolled)
            for start in range(0, len(ids), chunk_size):
                yield ids[start : start + chunk_size]

        def standings(self, course_key, user_ids):
            return {
                user_id: CourseStanding(self.grades.get(user_id), self.certificates.get(user_id))
                for user_id in user_ids
                if user_id in self.grades or user_id in self.certificates
            }

    state = Platform()
    monkeypatch.setattr("badges_bridge.compat.iter_enrolled_user_ids", state.chunks)
    monkeypatch.setattr("badges_bridge.compat.enrollment_count", lambda course_key: len(state.enrolled))
    monkeypatch.setattr("badges_bridge.compat.course_standings", state.standings)
    return state
