"""The code a run was made with: its git commit, and whether tracked files changed."""

from __future__ import annotations

import subprocess

from .names import GIT_COMMIT_TAG, GIT_DIRTY_TAG, OWN_GIT_COMMIT_TAG


def git_state() -> dict[str, str]:
    """The commit tags of a parent run; none outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        # Tracked files only: the store, reports and checkpoints a run writes beside the
        # code are untracked and say nothing about whether the code was committed.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {GIT_COMMIT_TAG: commit, OWN_GIT_COMMIT_TAG: commit,
            GIT_DIRTY_TAG: str(bool(dirty)).lower()}
