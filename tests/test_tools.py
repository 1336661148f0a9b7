"""The helpers of ``make test`` and ``make dist-check`` in tools/: the summary and the distribution checks."""

import importlib.util
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def load(name):
    spec = importlib.util.spec_from_file_location(f"tools_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run_checks = load("run_checks")
check_dist = load("check_dist")

VERSIONS = "badges_bridge versions: Python 3.12.1, Django 4.2.30, openedx-events 11.2.0\n"


def test_a_unit_run_is_labelled_with_its_versions_and_counts():
    lines = [VERSIONS, "....\n", "690 passed, 12 skipped, 3 deselected in 61.20s (0:01:01)\n"]
    assert run_checks.describe("unit py312-django42", "pytest", 0, lines) == (
        "unit 3.12/4.2",
        "690 passed, 12 skipped",
    )


def test_a_failed_run_keeps_its_counts_and_the_summary_names_it():
    lines = [VERSIONS, "=========== 2 failed, 51 passed in 30.01s ===========\n"]
    label, detail = run_checks.describe("integration", "pytest", 1, lines)
    results = [
        run_checks.Result("unit 3.11/5.2", True, "690 passed", 80.0),
        run_checks.Result(label, False, detail, 31.0),
        run_checks.Result("docs", True, "ok", 20.0),
    ]
    line = run_checks.report(results, 131.0)
    assert line == (
        "make test: FAILED (integration) - unit 3.11/5.2 690 passed, integration FAILED: 2 failed, 51 passed, "
        "docs ok (2 min 11 s)"
    )


def test_a_missing_python_is_reported_as_skipped():
    lines = ["py312-django42: no working Python found, skipping\n"]
    assert run_checks.describe("unit py312-django42", "pytest", 0, lines) == (
        "unit py312-django42",
        "skipped (no Python)",
    )


def test_coverage_reads_the_total_and_other_steps_their_status():
    lines = ["Name    Stmts   Miss Branch BrPart  Cover\n", "TOTAL    4000    150   1200     60    95.4%\n"]
    assert run_checks.describe("coverage", "coverage", 0, lines) == ("coverage", "95.4%")
    assert run_checks.describe("quality", "check", 2, ["E501 line too long\n"]) == ("quality", "exit status 2")


@pytest.fixture
def source(tmp_path):
    package = tmp_path / "badges_bridge"
    (package / "templates").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "templates" / "page.html").write_text("<p></p>")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    return tmp_path


def make_wheel(path, names, entry_points="[lms.djangoapp]\nx = y\n[cms.djangoapp]\nx = y\n"):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "")
        archive.writestr("pkg-0.1.dist-info/entry_points.txt", entry_points)
    return path


def make_sdist(path, names):
    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            archive.addfile(tarfile.TarInfo(f"pkg-0.1/{name}"), io.BytesIO(b""))
    return path


def test_the_package_files_are_those_of_the_source_tree_without_bytecode(source):
    assert check_dist.package_files(source) == {"badges_bridge/__init__.py", "badges_bridge/templates/page.html"}


def test_a_wheel_without_package_data_or_with_tests_is_refused(source, tmp_path):
    expected = check_dist.package_files(source)
    wheel = make_wheel(tmp_path / "a.whl", ["badges_bridge/__init__.py", "tests/test_x.py"], "[lms.djangoapp]\n")
    assert check_dist.wheel_problems(wheel, expected) == [
        "wheel lacks badges_bridge/templates/page.html",
        "wheel holds tests/test_x.py, which is not part of the package",
        "wheel has no [cms.djangoapp] entry point",
    ]
    assert check_dist.wheel_problems(make_wheel(tmp_path / "b.whl", sorted(expected)), expected) == []


def test_an_sdist_must_hold_what_the_wheel_build_reads(source, tmp_path):
    expected = check_dist.package_files(source)
    complete = sorted(expected | check_dist.SDIST_BUILD_FILES)
    assert check_dist.sdist_problems(make_sdist(tmp_path / "a.tar.gz", complete), expected) == []
    partial = [name for name in complete if name != "requirements/base.in"] + ["tests/test_x.py"]
    assert check_dist.sdist_problems(make_sdist(tmp_path / "b.tar.gz", partial), expected) == [
        "sdist lacks requirements/base.in",
        "sdist holds test file tests/test_x.py",
    ]


def test_the_steps_put_the_makefiles_pairs_between_the_coverage_report_and_the_checks():
    targets = [target for _label, target, _kind in run_checks.steps(["py311-django42", "py312-django52"])]
    assert targets == [
        "test-unit",
        "test-integration",
        "test-faults",
        "coverage-report",
        "test-py311-django42",
        "test-py312-django52",
        "quality",
        "dist-check",
        "docs",
    ]
