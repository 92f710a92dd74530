"""The repository stands alone: no tracked file refers to material beside the checkout.

A clone has only the repository, so nothing it builds, tests or benchmarks may read `../shared`
(or the path it had on the machine where berth was first written).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THIS = os.path.relpath(os.path.abspath(__file__), REPO)
OUTSIDE = re.compile(rb"""\.\./shared\b|/work/shared\b|["']\.\.["']\s*,\s*["']shared["']""")


def tracked_files() -> list[str]:
    if not os.path.isdir(os.path.join(REPO, ".git")) and not os.path.isfile(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout: the tracked files are unknown")
    out = subprocess.run(["git", "-C", REPO, "ls-files", "-z"], capture_output=True, check=True, timeout=60).stdout
    return [p for p in out.decode().split("\0") if p]


def test_pattern_catches_the_forms_a_reference_takes() -> None:
    for text in (b"bash ../shared/bench/peers.sh", b"/work/shared/DESIGN.md",
                 b'os.path.join(REPO, "..", "shared", "bench")', b"join(r, '..', 'shared')"):
        assert OUTSIDE.search(text), text
    for text in (b"shared layers", b'tmp_path / "shared"', b"../sharedlib", b"mount --make-shared"):
        assert not OUTSIDE.search(text), text


def test_no_tracked_file_refers_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if path == THIS:
            continue
        full = os.path.join(REPO, path)
        if os.path.islink(full) or not os.path.isfile(full):
            continue
        with open(full, "rb") as f:
            data = f.read()
        for n, line in enumerate(data.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path}:{n}: {line.decode(errors='replace').strip()[:120]}")
    assert not offenders, "files refer to material outside the repository:\n" + "\n".join(offenders)
