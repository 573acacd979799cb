# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): Key Vault access policies, the engine that writes them.

On a vault whose ``enableRbacAuthorization`` is false, data access is decided by its access policies alone: one
entry per principal (tenant, object id), with permissions per kind (keys, secrets, certificates, storage). One
principal's entry is changed with ``PUT {vault}/accessPolicies/{add|replace|remove}``: the other entries (other
teams') stay as they are, where a PUT of the whole vault would replace the list. :func:`ensure_access_policy` is the
only code that writes one. ARM is asked through the SDK client's pipeline (``_azure_arm_rest``): no Key Vault SDK
is needed for three requests.
"""

from __future__ import annotations

import threading
from typing import Any, TypedDict

from ._azure_arm_rest import ArmRestClient
from ._limits import KEY_VAULT_PERMISSIONS
from ._results import AccessPolicyState, Outcome
from ._retry import RetryPolicy

API_VERSION = "2023-07-01"
Permissions = dict[str, list[str]]  # kind -> permissions (Key Vault's spelling, sorted)


class VaultState(TypedDict):
    id: str
    name: str
    location: str
    tenant_id: str
    rbac: bool  # enableRbacAuthorization: its data is authorized by role assignments, not access policies
    uri: str
    policies: list[dict[str, Any]]  # the entries as ARM answers them


def normalise(permissions: Any) -> Permissions:
    """Permissions as compared: known kinds only, Key Vault's spelling, no duplicates, sorted, empty kinds dropped."""
    result: Permissions = {}
    for kind, values in (permissions or {}).items():
        known = {p.lower(): p for p in KEY_VAULT_PERMISSIONS.get(kind, ())}
        spelled = sorted({known.get(str(v).lower(), str(v)) for v in values or []}, key=str.lower)
        if spelled:
            result[kind] = spelled
    return result


def _union(a: Permissions, b: Permissions) -> Permissions:
    return normalise({k: [*a.get(k, []), *b.get(k, [])] for k in {*a, *b}})


def covers(held: Permissions, wanted: Permissions) -> bool:
    lower = {k: {p.lower() for p in v} for k, v in held.items()}
    return all({p.lower() for p in v} <= lower.get(k, set()) for k, v in wanted.items())


def vault_state(body: dict[str, Any]) -> VaultState:
    props = body.get("properties") or {}
    return {
        "id": str(body.get("id")),
        "name": str(body.get("name")),
        "location": str(body.get("location") or ""),
        "tenant_id": str(props.get("tenantId") or ""),
        "rbac": bool(props.get("enableRbacAuthorization")),
        "uri": str(props.get("vaultUri") or ""),
        "policies": list(props.get("accessPolicies") or []),
    }


def entry_of(vault: VaultState, object_id: str) -> AccessPolicyState | None:
    """The principal's own entry (not a compound one, which grants a user through an application)."""
    for entry in vault["policies"]:
        if str(entry.get("objectId", "")).lower() == object_id.lower() and not entry.get("applicationId"):
            return {"vault": vault["id"], "object_id": object_id, "permissions": normalise(entry.get("permissions"))}
    return None


class KeyVaultApi:
    """Vaults read and their access policies changed, through an ARM SDK client's pipeline."""

    def __init__(self, client: Any, policy: RetryPolicy | None = None) -> None:
        self.rest = ArmRestClient(client, API_VERSION, policy)

    def get(self, vault_id: str) -> VaultState | None:
        """The vault with its access policies; None when it does not exist."""
        found = self.rest.get_or_none(vault_id, f"read key vault {vault_id}")
        return vault_state(found) if found is not None else None

    def list_all(self, subscription: str) -> list[VaultState]:
        """Every vault of the subscription, with its access policies (every page)."""
        path = f"/subscriptions/{subscription}/providers/Microsoft.KeyVault/vaults"
        return [vault_state(v) for v in self.rest.pages(path, "list key vaults")]

    def update(self, vault: VaultState, kind: str, object_id: str, permissions: Permissions) -> None:
        """One principal's entry: ``add`` (merged into its permissions), ``replace`` or ``remove``."""
        entry = {"tenantId": vault["tenant_id"], "objectId": object_id, "permissions": permissions}
        self.rest.send(
            "PUT",
            f"{vault['id']}/accessPolicies/{kind}",
            f"{kind} the access policy of {object_id} on key vault {vault['name']}",
            {"properties": {"accessPolicies": [entry]}},
        )


def ensure_access_policy(
    api: KeyVaultApi,
    vault: VaultState,
    object_id: str,
    *,
    permissions: Permissions | None,
    state: str,
    check_mode: bool,
    exact: bool = True,
) -> Outcome[AccessPolicyState]:
    """The principal's entry on the vault: exactly ``permissions`` (``exact``), or at least them (an operator's
    principal keeps what it was given besides), or none (``state=absent``: the whole entry goes).

    ``vault`` is as read (in bulk, once per vault); what is written is applied to it too, so that one read serves
    every workload of the run.
    """
    before = entry_of(vault, object_id)
    if state == "absent":
        if before is None:
            return Outcome(False, "absent", None, None)
        if not check_mode:
            api.update(vault, "remove", object_id, before["permissions"])
            _apply(vault, object_id, None)
        return Outcome(True, "deleted", before, None)
    wanted = normalise(permissions)
    if before is None:
        kind, after = "add", wanted
    elif exact and before["permissions"] != wanted:
        kind, after = "replace", wanted
    elif not exact and not covers(before["permissions"], wanted):
        kind, after = "add", _union(before["permissions"], wanted)
    else:
        return Outcome(False, "unchanged", before, before)
    if not check_mode:
        api.update(vault, kind, object_id, wanted)
        _apply(vault, object_id, after)
    state_after: AccessPolicyState = {"vault": vault["id"], "object_id": object_id, "permissions": after}
    return Outcome(True, "created" if before is None else "updated", before, state_after)


def _apply(vault: VaultState, object_id: str, permissions: Permissions | None) -> None:
    """What was written, applied to the vault as read (workloads converge in parallel, several on one vault)."""
    with _APPLYING:
        kept = [
            e
            for e in vault["policies"]
            if str(e.get("objectId", "")).lower() != object_id.lower() or e.get("applicationId")
        ]
        if permissions is not None:
            kept.append({"tenantId": vault["tenant_id"], "objectId": object_id, "permissions": permissions})
        vault["policies"] = kept


_APPLYING = threading.Lock()
