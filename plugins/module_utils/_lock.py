# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): one writer at a time of an object's tags, per controller.

Clusters sharing an identity are converged by parallel hosts (forks), each in its own process on the controller.
Correctness does not rest on this lock: an identity's tags are written by name through ARM's Tags API
(``_azure_identity``), atomic at ARM whichever node writes. It serves where tags are written whole: an identity
when the automation may not use the Tags API (the run warns), and an application (Graph replaces its ``tags`` list
whole), so that this controller's own forks at least never lose one another's write. Other nodes (a sliced AWX job)
do not share it: see the deletion guards in ``_azure_batch_identities`` and ``_azure_batch_apps_removal``.
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
