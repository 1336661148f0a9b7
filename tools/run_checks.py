"""Run every step of ``make test`` in order, then print a table of the steps and a one-line summary.

Usage: ``python tools/run_checks.py py311-django42 ...``, with the Python and Django pairs of the Makefile's
MATRIX (``make test`` passes them). Each step is a make target whose output is shown as it runs. Every step
runs even when an earlier one failed, so one run shows everything that is wrong; the exit status is 1 when
any step failed. The last line is the summary, for example::

    make test: OK - unit 3.11/5.2 690 passed, 12 skipped, integration 53 passed, coverage 95%, ... (9 min 5 s)

Only the standard library is used: the script runs before any virtualenv exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

VERSIONS = re.compile(r"badges_bridge versions: Python (\d+\.\d+)\S*, Django (\d+\.\d+)\S*")
PYTEST_COUNTS = re.compile(r"(\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed)(?:, \d+ \w+)*) in [\d.]+s")
KEPT_COUNTS = ("passed", "failed", "error", "errors", "skipped")
COVERAGE_TOTAL = re.compile(r"^TOTAL\s.*?(\d+(?:\.\d+)?%)\s*$")
SKIPPED = "no working Python found, skipping"


def steps(pairs: list[str]) -> list[tuple[str, str, str]]:
    """(label, make target, kind) of every step; ``pairs`` are the Makefile's MATRIX, such as ``py312-django42``.

    The label of a unit run is replaced by the versions it printed, such as ``unit 3.12/4.2``.
    """
    matrix = [(f"unit {pair}", f"test-{pair}", "pytest") for pair in pairs]
    return [
        ("unit", "test-unit", "pytest"),
        ("integration", "test-integration", "pytest"),
        ("faults", "test-faults", "pytest"),
        ("coverage", "coverage-report", "coverage"),
        *matrix,
        ("quality", "quality", "check"),
        ("dist", "dist-check", "check"),
        ("docs", "docs", "check"),
    ]


@dataclass
class Result:
    """What one step did."""

    label: str
    ok: bool
    detail: str
    seconds: float

    @property
    def summary(self) -> str:
        """The step in the summary line; a failed step says so in capitals."""
        return f"{self.label} {'' if self.ok else 'FAILED: '}{self.detail}".strip()


def describe(label: str, kind: str, returncode: int, lines: list[str]) -> tuple[str, str]:
    """The label and the result text of a step, read from its output."""
    text = "".join(lines)
    versions = VERSIONS.search(text)
    if kind == "pytest" and label.startswith("unit"):
        if SKIPPED in text:
            return label, "skipped (no Python)"
        if versions:
            label = f"unit {versions.group(1)}/{versions.group(2)}"
    if kind == "pytest":
        counts = PYTEST_COUNTS.findall(text)
        if counts:
            kept = [part for part in counts[-1].split(", ") if part.split()[1] in KEPT_COUNTS]
            return label, ", ".join(kept)
        return label, "ok" if returncode == 0 else f"exit status {returncode}, no test result"
    if kind == "coverage":
        totals = [m.group(1) for m in map(COVERAGE_TOTAL.match, lines) if m]
        return label, totals[-1] if totals else ("ok" if returncode == 0 else f"exit status {returncode}")
    return label, "ok" if returncode == 0 else f"exit status {returncode}"


def run_step(make: str, label: str, target: str, kind: str) -> Result:
    """Run one make target, echoing its output, and read its result."""
    print(f"\n===== make test: {target} =====", flush=True)
    started = time.monotonic()
    with subprocess.Popen(  # noqa: S603 - make, from the environment, with a target of steps()
        [make, "--no-print-directory", target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        lines = []
        for line in process.stdout:
            sys.stdout.write(line)
            lines.append(line)
        returncode = process.wait()
    label, detail = describe(label, kind, returncode, lines)
    return Result(label, returncode == 0, detail, time.monotonic() - started)


def duration(seconds: float) -> str:
    """``95 s`` or ``9 min 5 s``."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def report(results: list[Result], seconds: float) -> str:
    """Print the table of steps and return the summary line."""
    print("\n===== make test: summary =====")
    for result in results:
        print(f"  {'ok  ' if result.ok else 'FAIL'}  {result.label:<18} {result.detail:<40} {duration(result.seconds)}")
    failed = [result.label for result in results if not result.ok]
    status = f"FAILED ({', '.join(failed)})" if failed else "OK"
    return f"make test: {status} - {', '.join(r.summary for r in results)} ({duration(seconds)})"


def main(pairs: list[str]) -> int:
    """Run the steps and print the summary; 1 when a step failed."""
    make = os.environ.get("MAKE", "make")
    started = time.monotonic()
    results = [run_step(make, label, target, kind) for label, target, kind in steps(pairs)]
    print(report(results, time.monotonic() - started), flush=True)
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
