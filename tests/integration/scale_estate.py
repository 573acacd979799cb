"""An estate of 500 identities, 500 federated credentials and 2000 role assignments, and the reads a rollout makes
of it: built and counted by the scale test, timed by ``make bench``."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.integration.sandbox_helpers import Sandbox

# Reader, AcrPull, Storage Blob Data Reader, Key Vault Secrets User: four per identity.
ROLES = (
    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "4633458b-17de-408a-b874-0445c86b69e6",
)


class ScaleEstate:
    """``size`` identities in ``rg``, each with a federated credential and four role assignments on the group."""

    def __init__(self, sandbox: Sandbox, rg: str, size: int = 500) -> None:
        self.sandbox, self.rg, self.size = sandbox, rg, size
        self._headers = {"Authorization": f"Bearer {sandbox.token()}"}
        self._local = threading.local()
        self.principals: list[str] = []

    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.verify = self.sandbox.ca
            self._local.session.headers.update(self._headers)
        return self._local.session  # type: ignore[no-any-return]

    def _make(self, index: int) -> str:
        base = self.sandbox.url + self.rg
        ident = f"{base}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-{index:03d}"
        created = self.session().put(ident + "?api-version=2024-11-30", json={"location": "westeurope"})
        assert created.status_code == 201, created.text
        principal = str(created.json()["properties"]["principalId"])
        fic = self.session().put(
            f"{ident}/federatedIdentityCredentials/aks?api-version=2024-11-30",
            json={
                "properties": {
                    "issuer": "https://issuer.example/",
                    "subject": f"system:serviceaccount:ns:sa{index}",
                    "audiences": ["api://AzureADTokenExchange"],
                }
            },
        )
        assert fic.status_code == 201, fic.text
        for role in ROLES:
            assignment = self.session().put(
                f"{base}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}?api-version=2022-04-01",
                json={
                    "properties": {
                        "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}",
                        "principalId": principal,
                        "principalType": "ServicePrincipal",
                    }
                },
            )
            assert assignment.status_code == 201, assignment.text
        return principal

    def build(self) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            self.principals = list(pool.map(self._make, range(self.size)))

    def reads(self) -> list[tuple[str, str, str, Callable[[dict[str, Any]], bool]]]:
        """(what, sandbox operation, path, check of the answer's content): the reads a rollout makes of the estate."""
        rg, middle = self.rg, f"app-{self.size // 2:03d}"
        ident = f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{middle}"
        sub = f"/subscriptions/{self.sandbox.subscription_id}"
        return [
            (
                "get identity",
                "userAssignedIdentities.get",
                f"{ident}?api-version=2024-11-30",
                lambda body: body["name"] == middle,
            ),
            (
                "list identities (page of 100)",
                "userAssignedIdentities.list",
                f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30",
                lambda body: len(body["value"]) == min(100, self.size),
            ),
            (
                "list FICs of an identity",
                "federatedIdentityCredentials.list",
                f"{ident}/federatedIdentityCredentials?api-version=2024-11-30",
                lambda body: len(body["value"]) == 1,
            ),
            # Not paged at a scope: all in one answer, as ARM does: the ones made here, and the automation
            # principal's own at the subscription (atScope() includes the scopes above).
            (
                "list assignments atScope() at the RG",
                "roleAssignments.list",
                f"{rg}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()",
                lambda body: len(body["value"]) == len(ROLES) * self.size + 1,
            ),
            (
                "list assignments of one principal",
                "roleAssignments.list",
                f"{sub}/providers/Microsoft.Authorization/roleAssignments"
                f"?api-version=2022-04-01&$filter=principalId eq '{self.principals[10]}'",
                lambda body: len(body["value"]) == len(ROLES),
            ),
            (
                "get role definition by name",
                "roleDefinitions.list",
                f"{rg}/providers/Microsoft.Authorization/roleDefinitions"
                "?api-version=2022-04-01&$filter=roleName eq 'AcrPull'",
                lambda body: len(body["value"]) == 1,
            ),
        ]

    def read(self, path: str, check: Callable[[dict[str, Any]], bool]) -> None:
        response = self.session().get(self.sandbox.url + path)
        assert response.status_code == 200, response.text
        assert check(response.json()), path
