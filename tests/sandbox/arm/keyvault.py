"""ARM: key vaults (Microsoft.KeyVault/vaults), their permission model and their access policies.

A vault is stored as a generic resource (so that deletion, existence checks and role assignments under it work as
for any resource) whose body this provider validates and completes: ``tenantId`` and ``sku`` are required, the
``vaultUri`` is assigned, ``enableRbacAuthorization`` defaults by api-version (``false`` before 2026-02-01, ``true``
from it, as Key Vault's announced change of default), and ``accessPolicies`` hold only the permissions Key Vault
knows. One principal's entry is changed with ``PUT .../accessPolicies/{add|replace|remove}``
(``Vaults_UpdateAccessPolicy``): every other entry stays as it is, where a PUT of the whole vault replaces the list.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import ids
from ..core import ApiError, Context, Response
from .common import ArmBase, _scope, _validate_tags

VAULT_TYPE = "Microsoft.KeyVault/vaults"


def _words(text: str) -> list[str]:
    return text.split()


# The permissions an access policy entry may hold, per kind (Key Vault's enums; ARM compares them in any case).
PERMISSIONS = {
    "keys": _words(
        "all encrypt decrypt wrapKey unwrapKey sign verify get list create update import delete backup "
        "restore recover purge release rotate getrotationpolicy setrotationpolicy"
    ),
    "secrets": _words("all get list set delete backup restore recover purge"),
    "certificates": _words(
        "all get list delete create import update managecontacts getissuers listissuers setissuers "
        "deleteissuers manageissuers recover purge backup restore"
    ),
    "storage": _words(
        "all get list delete set update regeneratekey recover purge backup restore setsas listsas getsas deletesas"
    ),
}
POLICY_LIMIT = 1024  # entries per vault
POLICIES_PER_UPDATE = 16  # entries per accessPolicies/{kind} request ("an array of 0 to 16 identities")
RBAC_DEFAULT_FROM = "2026-02-01"
SKUS = ("standard", "premium")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _entries(raw: Any, tenant: str, limit: int | None) -> list[dict[str, Any]]:
    """Access policy entries as Key Vault keeps them: tenant, object id, application id, known permissions."""
    if not isinstance(raw, list):
        raise _invalid("An invalid value was provided for 'accessPolicies'.")
    if limit is not None and len(raw) > limit:
        raise _invalid(f"The number of access policies in a request may not exceed {limit}.")
    entries: list[dict[str, Any]] = []
    for position, item in enumerate(raw):
        where = f"accessPolicies[{position}]"
        if not isinstance(item, dict):
            raise _invalid(f"An invalid value was provided for '{where}'.")
        object_id, tenant_id = str(item.get("objectId") or ""), str(item.get("tenantId") or "")
        if not ids.is_guid(object_id):
            raise _invalid(f"An invalid value was provided for '{where}.objectId': '{object_id}' is not a GUID.")
        if tenant_id.lower() != tenant.lower():
            raise _invalid(
                f"The tenant '{tenant_id}' of '{where}' is not the vault's tenant '{tenant}'. All identities must use "
                "the same tenant ID as the key vault's tenant ID."
            )
        permissions = item.get("permissions")
        if not isinstance(permissions, dict):
            raise _invalid(f"An invalid value was provided for '{where}.permissions'.")
        kept: dict[str, list[str]] = {}
        for kind, values in permissions.items():
            known = {p.lower(): p for p in PERMISSIONS.get(kind, [])}
            if kind not in PERMISSIONS or not isinstance(values, list):
                raise _invalid(f"An invalid value was provided for '{where}.permissions.{kind}'.")
            for value in values:
                if str(value).lower() not in known:
                    raise _invalid(
                        f"The permission '{value}' is not valid for {kind} in '{where}'. Valid values: "
                        f"{', '.join(PERMISSIONS[kind])}."
                    )
            kept[kind] = [str(v) for v in values]
        entry = {"tenantId": tenant_id, "objectId": object_id, "permissions": kept}
        if item.get("applicationId"):
            entry["applicationId"] = str(item["applicationId"])
        entries.append(entry)
    return entries


def _same_entry(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["objectId"].lower() == b["objectId"].lower()
        and a["tenantId"].lower() == b["tenantId"].lower()
        and str(a.get("applicationId") or "").lower() == str(b.get("applicationId") or "").lower()
    )


def _union(old: list[str], new: list[str]) -> list[str]:
    seen = {p.lower() for p in old}
    return old + [p for p in new if p.lower() not in seen and not seen.add(p.lower())]  # type: ignore[func-returns-value]


def apply_update(policies: list[dict[str, Any]], kind: str, given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``add`` merges each entry's permissions into the principal's entry (or appends it), ``replace`` replaces the
    entry's permissions (or appends it), ``remove`` takes the given permissions away from it (an entry left with none
    is removed); every other entry stays."""
    result = copy.deepcopy(policies)
    for entry in given:
        found = next((e for e in result if _same_entry(e, entry)), None)
        if kind == "remove":
            if found is None:
                continue
            for perm_kind, values in entry["permissions"].items():
                gone = {v.lower() for v in values}
                found["permissions"][perm_kind] = [
                    p for p in found["permissions"].get(perm_kind, []) if p.lower() not in gone
                ]
            if not any(found["permissions"].values()):
                result.remove(found)
        elif found is None:
            result.append(copy.deepcopy(entry))
        elif kind == "replace":
            found["permissions"] = copy.deepcopy(entry["permissions"])
        else:
            for perm_kind, values in entry["permissions"].items():
                found["permissions"][perm_kind] = _union(found["permissions"].get(perm_kind, []), values)
    return result


class KeyVaultProvider(ArmBase):
    def vault(self, ctx: Context, segs: list[str]) -> Response:
        method = ctx.request.method
        scope = self._authorized(ctx, segs)
        name = scope.names[-1]
        with self.store.lock:
            existing = self.store.get("generic", scope.key)
            answered = self._read_or_delete(ctx, scope, existing, lambda: Response(200))
            if answered is not None:
                return answered
            body = ctx.request.json_object()
            if method == "PATCH":
                if existing is None:
                    raise self._not_found(VAULT_TYPE, name, scope.resource_group or "")
                new = copy.deepcopy(existing["body"])
                props = new["properties"]
                given = body.get("properties") or {}
                for key, value in given.items():
                    if key == "accessPolicies":
                        props[key] = _entries(value, props["tenantId"], None)
                    elif key != "vaultUri":
                        props[key] = value
                if "tags" in body:
                    new["tags"] = _validate_tags(body["tags"] or {})
            else:
                new = self._vault_body(ctx, scope, name, body, existing)
            if len(new["properties"]["accessPolicies"]) > POLICY_LIMIT:
                raise _invalid(f"A vault may hold at most {POLICY_LIMIT} access policies.")
            self.store.put("generic", scope.key, {"body": new})
            return Response(200 if existing else 201, new)

    def _vault_body(
        self, ctx: Context, scope: ids.Scope, name: str, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        location = str(body.get("location") or "")
        if not location:
            raise ApiError(400, "LocationRequired", "The location property is required for this definition.")
        props = body.get("properties")
        if not isinstance(props, dict):
            raise _invalid("The parameter 'properties' is required.")
        tenant = str(props.get("tenantId") or "")
        if not ids.is_guid(tenant):
            raise _invalid("The parameter 'properties.tenantId' is required and must be a GUID.")
        sku = props.get("sku")
        if not isinstance(sku, dict) or str(sku.get("name", "")).lower() not in SKUS or sku.get("family") != "A":
            raise _invalid("The parameter 'properties.sku' is required: {family: A, name: standard|premium}.")
        api_version = ctx.request.q("api-version") or ""
        rbac = props.get("enableRbacAuthorization")
        if rbac is None:
            # The whole vault is replaced: an absent setting takes the default, as on creation.
            rbac = api_version >= RBAC_DEFAULT_FROM
        new_props = {
            **{k: v for k, v in props.items() if k not in ("vaultUri", "accessPolicies")},
            "tenantId": tenant,
            "sku": {"family": "A", "name": str(sku["name"]).lower()},
            "enableRbacAuthorization": bool(rbac),
            "accessPolicies": _entries(props.get("accessPolicies") or [], tenant, None),
            "vaultUri": f"https://{name.lower()}.vault.azure.net/",
            "provisioningState": "Succeeded",
        }
        return {
            "id": scope.raw,
            "name": existing["body"]["name"] if existing else name,
            "type": VAULT_TYPE,
            "location": location.lower().replace(" ", ""),
            "tags": _validate_tags(body.get("tags") or {}),
            "properties": new_props,
        }

    def vault_access_policies(self, ctx: Context, segs: list[str], kind: str) -> Response:
        """``PUT .../vaults/{vault}/accessPolicies/{add|replace|remove}``: the answer echoes the entries given."""
        vault_segs = segs[:-2]
        scope = _scope(vault_segs)
        if kind not in ("add", "replace", "remove"):
            raise _invalid(f"The operation kind '{kind}' is not valid: add, replace or remove.")
        if ctx.request.method != "PUT":
            raise ApiError(405, "MethodNotAllowed", f"The method '{ctx.request.method}' is not allowed.")
        self.app.authorize(ctx, f"{VAULT_TYPE}/accessPolicies/write", scope)
        self._require_rg(scope.subscription or "", scope.resource_group or "")
        body = ctx.request.json_object()
        with self.store.lock:
            existing = self.store.get("generic", scope.key)
            if existing is None:
                raise self._not_found(VAULT_TYPE, scope.names[-1], scope.resource_group or "")
            new = copy.deepcopy(existing["body"])
            props = new["properties"]
            given = _entries(
                (body.get("properties") or {}).get("accessPolicies"), props["tenantId"], POLICIES_PER_UPDATE
            )
            props["accessPolicies"] = apply_update(props["accessPolicies"], kind, given)
            if len(props["accessPolicies"]) > POLICY_LIMIT:
                raise _invalid(f"A vault may hold at most {POLICY_LIMIT} access policies.")
            self.store.put("generic", scope.key, {"body": new})
        return Response(
            200,
            {
                "id": f"{scope.raw}/accessPolicies/{kind}",
                "type": f"{VAULT_TYPE}/accessPolicies",
                "name": kind,
                "location": new["location"],
                "properties": {"accessPolicies": given},
            },
        )

    def list_vaults(self, ctx: Context, sub: str, rg: str | None) -> Response:
        """``Vaults_ListBySubscription`` / ``Vaults_ListByResourceGroup``: whole vaults, access policies included,
        paged with ``$top`` and ``nextLink``."""
        return self._page(ctx, self._listed(ctx, sub, rg, VAULT_TYPE))

    def vault_record(self, name: str) -> dict[str, Any] | None:
        """The vault of that name (vault names are unique in Azure), for its data plane."""
        for record in self.store.all("generic").values():
            body = record["body"]
            if body.get("type") == VAULT_TYPE and str(body.get("name", "")).lower() == name.lower():
                return dict(body)
        return None
