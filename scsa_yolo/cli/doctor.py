"""Check this environment: versions against the supported ranges, the start-up hook, kernels, extras.

One line per check: OK, INFO, WARN or FAIL, and for a problem the fix on the same line. Exit 0 when everything asked
for can run, 1 otherwise. The CPU kernel is built if it is not yet (about a minute, once per environment; --no-build
skips that). --need EXTRA makes a missing extra a failure.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the doctor's flags."""
    parser.add_argument(
        "--need",
        action="append",
        default=[],
        metavar="EXTRA",
        help="an extra you intend to use (compare, cluster); its absence fails the check (repeatable)",
    )
    parser.add_argument(
        "--no-build", action="store_true", help="do not build the fused CPU kernel; only check that it can be built"
    )


def run(args: argparse.Namespace) -> int:
    """Print the report; 0 if nothing failed, 1 otherwise."""
    from scsa_yolo.doctor import FAIL, diagnose

    findings = diagnose(needed=args.need, build=not args.no_build)
    for finding in findings:
        print(finding.line())
    failed = sum(f.status == FAIL for f in findings)
    print(f"scsa-yolo doctor: {failed} problem(s)" if failed else "scsa-yolo doctor: everything checked can run")
    return 1 if failed else 0
