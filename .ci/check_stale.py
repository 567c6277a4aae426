"""Staleness check: the committed dvc.lock and metrics/ must match the current code and params.

`dvc status` compares every stage's dependencies and outputs with dvc.lock. On a clean clone the
data and models are absent (DVC tracks them, git does not), so their entries say nothing about
staleness and are skipped; what must agree is everything git holds: code, params.yaml, the
stage commands and the committed metrics files. Exit 1 with a list of what differs.

    python .ci/check_stale.py    # from the repository root, with the environment active
"""

from __future__ import annotations

import json
import subprocess
import sys


def git_tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], check=True, capture_output=True, text=True)
    return set(out.stdout.splitlines())


def stale_entries(status: dict, tracked: set[str]) -> list[str]:
    """'stage: what' for every change to a git-tracked dependency, output, param or command."""
    found = []
    for stage, changes in status.items():
        for change in changes:
            if change == "changed command":
                found.append(f"{stage}: command changed")
                continue
            for kind in ("changed deps", "changed outs"):
                for path, state in change.get(kind, {}).items():
                    if isinstance(state, dict):  # params file: {"section.key": "modified"}
                        found.append(f"{stage}: {path} {json.dumps(state)}")
                    elif _in_git(path, tracked):
                        found.append(f"{stage}: {path} {state}")
    return found


def _in_git(path: str, tracked: set[str]) -> bool:
    folder = path.rstrip("/") + "/"
    return path in tracked or any(name.startswith(folder) for name in tracked)


def main() -> int:
    command = [sys.executable, "-m", "dvc", "status", "--json"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return 2
    status = json.loads(result.stdout or "{}")
    found = stale_entries(status, git_tracked())
    if found:
        print("dvc.lock / metrics/ are stale: `dvc repro` and commit dvc.lock and metrics/")
        print("\n".join(f"  {line}" for line in found))
        return 1
    print("dvc.lock and metrics/ match the code and params")
    return 0


if __name__ == "__main__":
    sys.exit(main())
