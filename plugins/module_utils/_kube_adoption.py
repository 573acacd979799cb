# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): when an object someone else bound may be taken over.

A ServiceAccount an operator annotated by hand is adopted when it already names the workload's client id (the
walkthrough's case: declare that identity with ``identity_name``). When it names another one, moving it would change
what its pods sign in as, and so what they may do, the next time they start: an operator decides that, with
``rebind: true``, not a rollout. An account this collection already manages is its own to change.
"""

from __future__ import annotations

from typing import Any

from ._inventory import WorkloadSpec
from ._kube_patch import dig
from ._kube_paths import CLIENT_ID
from ._ownership_kube import kube_created_by_collection, kube_workload


def foreign_binding(
    cluster: str, spec: WorkloadSpec, client_id: str | None, current: dict[str, Any] | None
) -> str | None:
    """The problem to report when ``current`` is someone else's account bound to another client id, else None."""
    if current is None or spec.rebind:
        return None
    labels = dig(current, "metadata", "labels")
    if kube_workload(labels) is not None or kube_created_by_collection(labels):
        return None
    found = (dig(current, "metadata", "annotations") or {}).get(CLIENT_ID)
    if not found or found == client_id:
        return None
    target = f"identity {spec.identity_name}" if not spec.is_application else "its app registration"
    wanted = f"client id {client_id}" if client_id else f"the new {target}"
    return (
        f"cluster {cluster}: workload '{spec.name}': service_account: {spec.namespace}/{spec.service_account} "
        f"is bound to client id {found}, not {wanted}; to keep that identity, set identity_name (and "
        "identity_resource_group) to it and it is adopted; to move the account to this workload's identity, "
        "set rebind: true"
    )
