# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): one writer at a time of an object's tags, per controller.

Clusters sharing an identity are converged by parallel hosts (forks), each in its own process on the controller
(the modules run with ``connection: local``, in AWX too: one execution environment per job). ARM replaces an
identity's tags whole and has no ETag for them, so two processes that add or remove their claim at once would lose
one of the two writes. Each takes this lock around reading the tags afresh and writing them back.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def object_lock(object_id: str) -> Iterator[None]:
    """Held by one process of this controller at a time, per object (its ARM or Graph id, case-insensitive)."""
    folder = os.path.join(tempfile.gettempdir(), "workload_identity_aks-locks")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, hashlib.sha256(object_id.lower().encode()).hexdigest()[:32])
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
