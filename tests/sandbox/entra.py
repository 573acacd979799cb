"""Entra ID: discovery, the v2.0 token endpoint (secrets and federated assertions), cluster issuers."""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from . import ids, jwt
from .core import Context, EntraError, Request, Response, Route

if TYPE_CHECKING:
    from .app import Sandbox

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


OIDC_SCOPES = frozenset({"openid", "profile", "offline_access"})


class EntraApi:
    def __init__(self, app: Sandbox) -> None:
        self.app = app

    def route(self, request: Request, segs: list[str], low: list[str]) -> Route | None:
        if not low or low[0] in ("subscriptions", "providers", "metadata", "tenants", "_sandbox", "graph"):
            return None
        if low[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return Route("entra.openid", "entra", lambda c: self.openid_configuration(c, segs[0]))
        if low[1:] == ["oauth2", "v2.0", "token"] and request.method == "POST":
            return Route("entra.token", "entra", lambda c: self.token(c, segs[0]))
        if low[1:] == ["discovery", "v2.0", "keys"]:
            return Route(
                "entra.keys", "entra", lambda c: Response(200, {"keys": [jwt.jwk(self.app._entra_key.public_key())]})
            )
        if low == ["common", "discovery", "instance"]:
            return Route("entra.instance", "entra", self.instance_discovery)
        if (
            len(low) >= 3
            and ids.is_guid(low[1])
            and low[2:] in ([".well-known", "openid-configuration"], ["openid", "v1", "jwks"])
        ):
            kind = "discovery" if low[2] == ".well-known" else "jwks"
            return Route(f"oidc.{kind}", "oidc", lambda c: self.cluster_issuer(c, segs[0], segs[1], kind))
        return None

    def _check_tenant(self, tenant: str) -> None:
        if tenant.lower() != self.app.tenant_id:
            raise EntraError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud.",
            )

    def openid_configuration(self, ctx: Context, tenant: str) -> Response:
        self._check_tenant(tenant)
        # Built on the host the client asked: MSAL checks the issuer against the authority it was given.
        base, tid = self.app.origin(ctx.request), self.app.tenant_id
        return Response(
            200,
            {
                "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/{tid}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{base}/oidc/userinfo",
                "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "oid"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com" if ctx.request.origin else "sandbox.local",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def instance_discovery(self, ctx: Context) -> Response:
        origin = self.app.origin(ctx.request)
        host = origin.split("://", 1)[1]
        discovery = f"{origin}/{self.app.tenant_id}/v2.0/.well-known/openid-configuration"
        return Response(
            200,
            {
                "tenant_discovery_endpoint": discovery,
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            },
        )

    # -- tokens -------------------------------------------------------------------------------------
    def token(self, ctx: Context, tenant: str) -> Response:
        self._check_tenant(tenant)
        form = ctx.request.form()
        if form.get("grant_type") != "client_credentials":
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{form.get('grant_type')}'.",
            )
        scope = form.get("scope", "")
        resource = self._resource(scope)
        client_id = form.get("client_id", "")
        principal = self._principal_by_app(client_id)
        if principal is None:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.app.tenant_id}'. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant.",
            )
        if "client_assertion" in form:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise EntraError(400, "invalid_request", 50027, "Invalid client_assertion_type.")
            self._check_assertion(principal, form["client_assertion"])
        elif "client_secret" in form:
            if not principal.get("secret") or form["client_secret"] != principal["secret"]:
                raise EntraError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    f"client secret value, not the client secret ID, for a secret added to app "
                    f"'{client_id}'.",
                )
        else:
            raise EntraError(
                400,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        now = int(time.time())
        lifetime = self.app.settings.token_lifetime_seconds
        claims = {
            "aud": resource,
            "iss": f"{self.app.base_url}/{self.app.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": principal["app_id"],
            "azp": principal["app_id"],
            "oid": principal["principal_id"],
            "sub": principal["principal_id"],
            "tid": self.app.tenant_id,
            "idtyp": "app",
            "ver": "2.0",
            "uti": uuid.uuid4().hex,
        }
        if resource.rstrip("/").lower() in self.app.graph.audiences:
            # Graph authorizes app-only callers by the application permissions granted to them.
            claims["roles"] = list(principal.get("graph_roles") or [])
        return Response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": jwt.sign(claims, self.app._entra_key),
            },
        )

    def _resource(self, scope: str) -> str:
        # MSAL Go (azidentity under every Go tool) adds OpenID Connect's reserved scopes to every request;
        # Entra takes them beside a client-credential scope and issues the resource's token.
        scopes = [s for s in scope.split() if s not in OIDC_SCOPES]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scopes[0][: -len("/.default")]
        from .blob import AUDIENCES as STORAGE_AUDIENCES
        from .cosmos_data import cosmos_audience
        from .guard import AKS_SERVER_APP_ID
        from .postgres_gateway import AUDIENCE as POSTGRES_AUDIENCE
        from .vault import AUDIENCE as VAULT_AUDIENCE

        known = self.app.arm_audiences | self.app.graph.audiences | {AKS_SERVER_APP_ID, VAULT_AUDIENCE}
        known |= set(STORAGE_AUDIENCES) | {POSTGRES_AUDIENCE}
        # A storage account's own blob endpoint is its audience too; so is a Cosmos DB account's, and Cosmos DB's.
        if re.fullmatch(r"https://[a-z0-9]{3,24}\.blob\.core\.windows\.net/?", resource.lower()) or cosmos_audience(
            resource
        ):
            known.add(resource.rstrip("/").lower())
        if resource.rstrip("/").lower() not in known:
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {self.app.tenant_id}.",
            )
        return resource

    def _principal_by_app(self, client_id: str) -> dict[str, Any] | None:
        return self.app.directory.principal_by_app_id(client_id)

    def _check_assertion(self, principal: dict[str, Any], assertion: str) -> None:
        """A workload's federated token: checked against the identity's FICs and its issuer's JWKS."""
        try:
            _header, claims = jwt.unverified(assertion)
        except jwt.InvalidToken as exc:
            raise EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from exc
        issuer, subject, audience = claims.get("iss"), claims.get("sub"), claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        now = time.time()
        # A managed identity's credentials (ARM) or an application's (Graph): the directory knows which. A credential
        # younger than the propagation delay is not seen yet.
        visible = [
            props
            for props, created_at in self.app.directory.fics_for_principal(principal)
            if now - created_at >= self.app.settings.fic_propagation_seconds
        ]
        self._match_credential(visible, str(issuer), str(subject), [str(a) for a in audiences])
        cluster = self._published_issuer(str(issuer))
        if cluster is None:
            raise EntraError(
                400,
                "invalid_request",
                50166,
                f"Request to External OIDC endpoint failed: the issuer '{issuer}' publishes no discovery document.",
            )
        public = jwt.load_private(cluster["signing_key"]).public_key()
        try:
            jwt.verify(assertion, public)
        except jwt.InvalidToken as exc:
            raise EntraError(400, "invalid_client", 700027, "Client assertion failed signature validation.") from exc
        if float(claims.get("exp", 0)) < now or float(claims.get("nbf", 0)) > now + 300:
            raise EntraError(400, "invalid_client", 700024, "Client assertion is not within its valid time range.")

    @staticmethod
    def _match_credential(visible: list[dict[str, Any]], issuer: str, subject: str, audiences: list[str]) -> None:
        """Exact matching on issuer, then subject, then audience, each with its own code (case counts since 2025)."""
        hint = (
            "Please check your federated identity credential Subject, Audience and Issuer against the presented "
            "assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
        )
        if not visible:
            raise EntraError(
                400,
                "invalid_request",
                70021,
                f"No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. "
                f"Assertion Subject: '{subject}'. Assertion Audience: '{','.join(audiences)}'. {hint}",
            )
        by_issuer = [p for p in visible if p["issuer"] == issuer]
        if not by_issuer:
            raise EntraError(
                401,
                "invalid_client",
                700211,
                f"No matching federated identity record found for presented assertion issuer '{issuer}'. {hint}",
            )
        by_subject = [p for p in by_issuer if p["subject"] == subject]
        if not by_subject:
            case_only = any(p["subject"].lower() == subject.lower() for p in by_issuer)
            raise EntraError(
                401,
                "invalid_client",
                7002138 if case_only else 700213,
                f"No matching federated identity record found for presented assertion subject '{subject}'. "
                + ("Note: the matching is done using case-sensitive comparison. " if case_only else "")
                + hint,
            )
        if not any(a in p["audiences"] for p in by_subject for a in audiences):
            raise EntraError(
                401,
                "invalid_client",
                700212,
                "No matching federated identity record found for presented assertion audience "
                f"'{','.join(audiences)}'. {hint}",
            )

    def _published_issuer(self, issuer: str) -> dict[str, Any] | None:
        for record in self.app.store.all("cluster").values():
            if (
                record.get("published")
                and issuer == f"{self.app.base_url}/{self.app.tenant_id}/{record['issuer_guid']}/"
            ):
                return record
        return None

    def cluster_issuer(self, ctx: Context, tenant: str, guid: str, kind: str) -> Response:
        issuer = f"{self.app.base_url}/{tenant}/{guid}/"
        # Settle pending operations so an issuer becomes visible as soon as its enabling finished.
        for key in list(self.app.store.all("cluster")):
            self.app.arm._settle(key)
        cluster = self._published_issuer(issuer)
        if cluster is None:
            return Response(404, b"The specified blob does not exist.", content_type="text/plain")
        if kind == "jwks":
            return Response(200, {"keys": [jwt.jwk(jwt.load_private(cluster["signing_key"]).public_key())]})
        return Response(
            200,
            {
                "issuer": issuer,
                "jwks_uri": f"{issuer}openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            },
        )
