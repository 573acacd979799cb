"""A small client of the sandbox's control API (for the CLI, tests and the benchmark)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class SandboxClient:
    def __init__(self, base_url: str, ca_file: Path) -> None:
        self.base_url = base_url.rstrip("/")
        self.ca_file = ca_file
        self._context: ssl.SSLContext | None = None

    @property
    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context(cafile=str(self.ca_file))
        return self._context

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from exc
        return json.loads(payload) if payload else None

    def healthy(self) -> bool:
        """Answering, and the API servers of its kube-backed clusters are back."""
        try:
            return bool(self.call("GET", "/_sandbox/health").get("kube_ready"))
        except (OSError, RuntimeError, ssl.SSLError):
            return False

    def internal_errors(self) -> int:
        """How many requests crashed a handler (a sandbox bug, answered as a 500) since the sandbox started."""
        return int(self.call("GET", "/_sandbox/health")["internal_errors"])

    def env(self) -> dict[str, str]:
        return dict(self.call("GET", "/_sandbox/env"))

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("PATCH", "/_sandbox/config", settings))

    def stats(self) -> dict[str, Any]:
        return dict(self.call("GET", "/_sandbox/stats"))

    def reset_stats(self) -> None:
        self.call("DELETE", "/_sandbox/stats")

    def add_fault(self, **spec: Any) -> None:
        self.call("POST", "/_sandbox/faults", spec)

    def clear_faults(self) -> None:
        self.call("DELETE", "/_sandbox/faults")

    def reset(self) -> None:
        self.call("POST", "/_sandbox/reset")

    def create_principal(
        self,
        roles: list[dict[str, str]] | None = None,
        replicated: bool = True,
        principal_type: str = "ServicePrincipal",
        display_name: str = "sandbox-principal",
        graph_roles: list[str] | None = None,
    ) -> dict[str, str]:
        """An app registration with a secret, ARM role assignments and Microsoft Graph app roles."""
        spec = {
            "roles": roles or [],
            "replicated": replicated,
            "type": principal_type,
            "display_name": display_name,
            "graph_roles": graph_roles or [],
        }
        return dict(self.call("POST", "/_sandbox/principals", spec))

    def add_subscription(self, display_name: str) -> str:
        """Another subscription of the tenant, the admin principal its Owner."""
        return str(self.call("POST", "/_sandbox/subscriptions", {"display_name": display_name})["subscription_id"])

    def seed_cluster(self, resource_group: str, name: str, **options: Any) -> dict[str, Any]:
        return dict(
            self.call("POST", "/_sandbox/clusters", {"resource_group": resource_group, "name": name, **options})
        )

    def set_graph_roles(self, principal_id: str, roles: list[str]) -> dict[str, Any]:
        return dict(self.call("PUT", f"/_sandbox/principals/{principal_id}/graph-roles", {"roles": roles}))

    def cluster(self, resource_group: str, name: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/_sandbox/clusters/{resource_group}/{name}"))
