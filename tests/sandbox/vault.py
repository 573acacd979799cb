"""Key Vault's data plane: a vault's secrets at ``https://<vault>.vault.azure.net`` (through the public-hostnames
proxy) or ``<sandbox>/dataplane/vault/<vault>`` (directly), authorized as Key Vault does.

- Authentication: a bearer token from Entra with audience ``https://vault.azure.net`` and the vault's tenant; a
  request without one is answered 401 with Key Vault's challenge (``authorization`` = the tenant's authority,
  ``resource`` = the audience), which the Key Vault SDKs read to ask for the right token.
- Authorization, by the vault's permission model (``properties.enableRbacAuthorization``): with access policies,
  only the entry for the token's ``oid`` counts (an entry with an ``applicationId`` is a compound identity, a user
  through that application, and does not match an application's own token); with Azure RBAC, the data actions of
  the caller's role assignments at the vault, a secret, or above (conditions are not evaluated here). A role
  assignment on an access-policy vault grants nothing on its data, and an access policy nothing on an RBAC vault.
- Secrets: list (``list`` / ``secrets/readMetadata/action``), get (``get`` / ``secrets/getSecret/action``), set
  (``set`` / ``secrets/setSecret/action``). Values are kept in the sandbox's store; the request log never has them.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from . import ids, jwt, rbac
from .core import Context, Response, Route

if TYPE_CHECKING:
    from .app import Sandbox

AUDIENCE = "https://vault.azure.net"
PREFIX = ("dataplane", "vault")
SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
# What each operation needs: the access policy permission, and the RBAC data action.
NEEDS = {
    "list": ("list", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"),
    "get": ("get", "Microsoft.KeyVault/vaults/secrets/getSecret/action"),
    "set": ("set", "Microsoft.KeyVault/vaults/secrets/setSecret/action"),
}


def vault_path(name: str) -> str:
    """The sandbox's path prefix of a vault's data plane."""
    return f"/{PREFIX[0]}/{PREFIX[1]}/{name.lower()}"


class VaultError(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None, headers: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.inner = status, code, message, inner
        self.headers: dict[str, str] = dict(headers or {})

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return Response(self.status, {"error": error}, self.headers)


class VaultDataPlane:
    def __init__(self, app: Sandbox) -> None:
        self.app = app

    def route(self, request: Any, segs: list[str], low: list[str]) -> Route | None:
        if tuple(low[:2]) != PREFIX or len(low) < 3:
            return None
        name, rest = segs[2], low[3:]
        if rest[:1] != ["secrets"] or len(rest) > 3:
            return Route("vault.unsupported", "keyvault", lambda c: self._answer(c, name, "unsupported", None))
        if len(rest) == 1:
            return Route("vault.secrets.list", "keyvault", lambda c: self._answer(c, name, "list", None))
        verb = {"GET": "get", "PUT": "set"}.get(request.method, "unsupported")
        return Route(f"vault.secrets.{verb}", "keyvault", lambda c: self._answer(c, name, verb, segs[4]))

    def _answer(self, ctx: Context, name: str, operation: str, secret: str | None) -> Response:
        try:
            return self._serve(ctx, name, operation, secret)
        except VaultError as exc:
            return exc.response()

    def _serve(self, ctx: Context, name: str, operation: str, secret: str | None) -> Response:
        request = ctx.request
        vault = self.app.arm.vault_record(name)
        if vault is None:
            # In Azure the vault's DNS name would not resolve: there is no one to answer.
            raise VaultError(404, "VaultNotFound", f"No vault named '{name}' exists (its DNS name does not resolve).")
        if operation == "unsupported":
            raise VaultError(
                405, "BadParameter", f"The sandbox's vault does not serve {request.method} {request.path}."
            )
        claims = self._authenticate(request, vault)
        if request.q("api-version") is None:
            raise VaultError(400, "BadParameter", "The api-version query parameter is required.")
        permission, data_action = NEEDS[operation]
        # A secret's scope is the vault's child; listing them is authorized at the vault.
        resource = vault["id"] + (f"/secrets/{secret}" if secret else "")
        self._authorize(vault, claims, "secrets", permission, data_action, resource)
        base = request.origin or (self.app.base_url + vault_path(name))
        if operation == "list":
            items = [
                {"id": f"{base}/secrets/{record['name']}", "attributes": record["attributes"]}
                for key, record in sorted(self.app.store.all("secret").items())
                if key.startswith(ids.norm(vault["id"]) + "/secrets/")
            ]
            return Response(200, {"value": items, "nextLink": None})
        if not secret or not SECRET_NAME.fullmatch(secret):
            raise VaultError(400, "BadParameter", f"The secret name '{secret}' is not valid: 1-127 letters, digits, -.")
        key = ids.norm(vault["id"]) + "/secrets/" + secret.lower()
        if operation == "set":
            value = (request.json_object() if request.body else {}).get("value")
            if not isinstance(value, str):
                raise VaultError(400, "BadParameter", "The secret's value is required.")
            now = int(time.time())
            record = {
                "name": secret,
                "value": value,
                "version": uuid.uuid4().hex,
                "attributes": {
                    "enabled": True,
                    "created": now,
                    "updated": now,
                    "recoveryLevel": "Recoverable+Purgeable",
                },
            }
            self.app.store.put("secret", key, record)
        else:
            found = self.app.store.get("secret", key)
            if found is None:
                raise VaultError(
                    404,
                    "SecretNotFound",
                    f"A secret with (name/id) {secret} was not found in this key vault. If you recently deleted this "
                    "secret you may be able to recover it using the correct recovery command. For help resolving "
                    "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
                )
            record = dict(found)
        return Response(
            200,
            {
                "value": record["value"],
                "id": f"{base}/secrets/{record['name']}/{record['version']}",
                "attributes": record["attributes"],
            },
        )

    def _authenticate(self, request: Any, vault: dict[str, Any]) -> dict[str, Any]:
        authority = "https://login.microsoftonline.com" if request.origin else self.app.base_url
        tenant = vault["properties"]["tenantId"]
        challenge = {"WWW-Authenticate": f'Bearer authorization="{authority}/{tenant}", resource="{AUDIENCE}"'}
        scheme, _space, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise VaultError(
                401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", None, challenge
            )
        try:
            claims = jwt.verify(token.strip(), self.app._entra_key.public_key())
        except jwt.InvalidToken as exc:
            raise VaultError(401, "Unauthorized", "The token could not be validated.", None, challenge) from exc
        if float(claims.get("exp", 0)) < time.time():
            raise VaultError(401, "Unauthorized", "The token is expired.", None, challenge)
        if str(claims.get("aud", "")).rstrip("/").lower() != AUDIENCE:
            raise VaultError(
                401,
                "Unauthorized",
                f"Invalid audience. Expected {AUDIENCE}, found: {claims.get('aud')}.",
                None,
                challenge,
            )
        if str(claims.get("tid", "")).lower() != tenant.lower():
            raise VaultError(401, "Unauthorized", f"The token's tenant is not the vault's ({tenant}).", None, challenge)
        return dict(claims)

    def _authorize(
        self, vault: dict[str, Any], claims: dict[str, Any], kind: str, permission: str, data_action: str, resource: str
    ) -> None:
        oid, appid = str(claims.get("oid")), str(claims.get("appid"))
        caller = f"appid={appid};oid={oid};iss={claims.get('iss')}"
        where = f"{vault['name']};location={vault['location']}"
        props = vault["properties"]
        if props.get("enableRbacAuthorization"):
            scope = ids.parse_scope(resource)
            for record in self.app.assignments_applying(scope, oid):
                role = self.app.role_definition(record["role_guid"])
                if role and rbac.permits(role["permissions"], data_action, data_action=True):
                    return
            raise VaultError(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or "
                "role definitions were changed recently, please observe propagation time.\r\n"
                f"Caller: {caller}\r\nAction: '{data_action}'\r\nResource: '{resource.lower()}'\r\n"
                f"Assignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {where}\r\n",
                "ForbiddenByRbac",
            )
        for entry in props.get("accessPolicies") or []:
            if entry["objectId"].lower() != oid.lower() or entry.get("applicationId"):
                continue
            granted = {p.lower() for p in entry["permissions"].get(kind) or []}
            if permission in granted or "all" in granted:
                return
        raise VaultError(
            403,
            "Forbidden",
            f"The user, group or application '{caller}' does not have {kind} {permission} permission on key vault "
            f"'{where}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
            "AccessDenied",
        )
