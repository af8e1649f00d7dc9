"""Where the suite's time goes, by test file: setup + call + teardown summed per file.

    .venv/bin/python -m pytest -q --junitxml=/tmp/after.xml
    .venv/bin/python bench/test_times.py /tmp/after.xml                  # one run
    .venv/bin/python bench/test_times.py /tmp/before.xml /tmp/after.xml  # before / after

pytest's JUnit XML gives each test case one ``time``: setup, call and teardown together (the
default ``junit_duration_report = total``), so a session-scoped fixture's start is charged to the
first test that uses it, as it is in the run's wall time. The table is markdown, slowest first;
the last line is the sum (the wall time minus collection and the gaps between tests).
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FileTimes:
    """Seconds and test count per file of one run."""

    seconds: dict[str, float] = field(default_factory=dict)
    tests: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def read(path: Path) -> FileTimes:
    """Sum the ``testcase`` times of a JUnit XML report by file (``file`` or the dotted classname)."""
    times = FileTimes()
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("file") or (case.get("classname") or "?").replace(".", "/") + ".py"
        times.seconds[name] = times.seconds.get(name, 0.0) + float(case.get("time") or 0.0)
        times.tests[name] = times.tests.get(name, 0) + 1
    return times


def table(runs: Sequence[FileTimes], labels: Sequence[str], *, top: int | None = None) -> str:
    """A markdown table: one row per file (slowest in the last run first), one column per run."""
    last = runs[-1]
    files = sorted({name for run in runs for name in run.seconds}, key=lambda name: -last.seconds.get(name, 0.0))
    if top is not None:
        files = files[:top]
    header = ["file", "tests", *(f"{label} (s)" for label in labels)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name in files:
        cells = [f"{run.seconds[name]:.1f}" if name in run.seconds else "–" for run in runs]
        lines.append(f"| {name} | {last.tests.get(name, 0)} | " + " | ".join(cells) + " |")
    totals = [f"**{run.total:.1f}**" for run in runs]
    lines.append(f"| **all** | {sum(last.tests.values())} | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", type=Path, help="JUnit XML reports (pytest --junitxml), oldest first")
    parser.add_argument("--labels", help="comma-separated column names (default: before, after / the file names)")
    parser.add_argument("--top", type=int, help="only the N slowest files (the total still counts all)")
    options = parser.parse_args(argv)
    if options.labels:
        labels = options.labels.split(",")
    elif len(options.reports) == 2:
        labels = ["before", "after"]
    else:
        labels = [path.stem for path in options.reports]
    if len(labels) != len(options.reports):
        parser.error("one label per report")
    print(table([read(path) for path in options.reports], labels, top=options.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
