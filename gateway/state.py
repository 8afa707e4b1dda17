"""The state directory (`var/`, OBGW_VAR_DIR) is the owner's alone: directories 0700, files 0600.

It holds the embedded Redis's append-only file (every consent, client and token record), the audit checkpoints and
spool, the sandbox ledger and the admin password's hash. The gateway and every child it starts run with umask 077,
so whatever any of them writes there is born owner-only; a directory left by an older version (0644 files in 0755
directories) is tightened at start.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

OWNER_ONLY_UMASK = 0o077


def private_dir(path: Path) -> None:
    """Create `path` (and its parents) as 0700, or make an existing one so."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def make_private(var_dir: Path) -> None:
    """umask 077 for this process and the children it starts, `var_dir` created 0700, and everything already in it
    stripped of group and other permissions. Symbolic links are left alone (their targets are not ours to change)."""
    os.umask(OWNER_ONLY_UMASK)
    private_dir(var_dir)
    for root, dirs, files in os.walk(var_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                os.chmod(path, stat.S_IMODE(mode) & 0o700)
