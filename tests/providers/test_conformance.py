"""Runs the provider conformance suite for every registered provider kind.

A kind whose harness module does not exist is skipped; any other import error fails.
"""

import pytest
from django.test import override_settings

from badges_bridge.testing.conformance import ProviderConformanceTests, harness_fixture, load_harness_class

harness = harness_fixture()


class TestProviderConformance(ProviderConformanceTests):
    """Every built-in (and BADGES_BRIDGE_TEST_HARNESSES) provider against its fake."""


@pytest.mark.parametrize("path", ["badges_bridge.testing.fake_nothing.Harness", "not_a_package.fake.Harness"])
def test_a_missing_harness_module_is_skipped(path: str):
    with override_settings(BADGES_BRIDGE_TEST_HARNESSES={"absent": path}), pytest.raises(pytest.skip.Exception):
        load_harness_class("absent")


def test_a_harness_with_a_missing_dependency_fails(tmp_path, monkeypatch):
    (tmp_path / "harness_needing_more.py").write_text("import a_dependency_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with (
        override_settings(BADGES_BRIDGE_TEST_HARNESSES={"broken": "harness_needing_more.Harness"}),
        pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"),
    ):
        load_harness_class("broken")
