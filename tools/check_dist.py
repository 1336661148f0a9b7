"""Check the built distributions: the sdist can rebuild the wheel, the wheel holds the package and no tests.

Usage: ``python tools/check_dist.py dist`` (``make dist-check`` runs it after ``python -m build``).
Exits with status 1 and lists every problem when a check fails.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "badges_bridge"
#: Files outside the package that setup.py reads while building the wheel from the sdist.
SDIST_BUILD_FILES = {
    "setup.py",
    "pyproject.toml",
    "README.rst",
    "CHANGELOG.rst",
    "LICENSE",
    "requirements/base.in",
    "requirements/constraints.txt",
}
ENTRY_POINT_GROUPS = ("[lms.djangoapp]", "[cms.djangoapp]")


def package_files(root: Path = ROOT) -> set[str]:
    """Every file of the package in the source tree, as a path relative to ``root`` (bytecode excluded)."""
    return {
        path.relative_to(root).as_posix()
        for path in (root / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    }


def only_one(dist: Path, pattern: str) -> Path:
    """The single file of ``dist`` matching ``pattern``."""
    found = sorted(dist.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"check_dist: expected one {pattern} in {dist}, found {len(found)}; run 'make dist' first")
    return found[0]


def wheel_problems(wheel: Path, expected: set[str]) -> list[str]:
    """What is missing from, or should not be in, the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next((archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")), "")
    problems = [f"wheel lacks {name}" for name in sorted(expected - names)]
    unexpected = sorted(n for n in names if not n.startswith(f"{PACKAGE}/") and ".dist-info/" not in n)
    problems += [f"wheel holds {name}, which is not part of the package" for name in unexpected]
    problems += [f"wheel has no {group} entry point" for group in ENTRY_POINT_GROUPS if group not in entry_points]
    return problems


def sdist_problems(sdist: Path, expected: set[str]) -> list[str]:
    """What the sdist lacks to rebuild the wheel, or holds that it should not."""
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    problems = [f"sdist lacks {name}" for name in sorted((expected | SDIST_BUILD_FILES) - names)]
    problems += [f"sdist holds test file {name}" for name in sorted(names) if name.startswith("tests/")]
    return problems


def main(argv: list[str]) -> int:
    """Check the wheel and the sdist in the directory given as the only argument."""
    dist = Path(argv[1] if len(argv) > 1 else "dist")
    wheel, sdist = only_one(dist, "*.whl"), only_one(dist, "*.tar.gz")
    expected = package_files()
    problems = wheel_problems(wheel, expected) + sdist_problems(sdist, expected)
    for problem in problems:
        print(f"check_dist: {problem}")
    if problems:
        return 1
    print(f"check_dist: ok: {wheel.name} and {sdist.name} hold the {len(expected)} files of {PACKAGE}, no tests")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
