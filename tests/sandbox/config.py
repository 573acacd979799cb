"""Run-time knobs of the sandbox; all of them can be changed while it runs (PATCH /_sandbox/config)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Buckets:
    """ARM's token buckets: capacity and refill per second, per subscription + principal."""

    reads: tuple[float, float] = (250, 25)
    writes: tuple[float, float] = (200, 10)
    deletes: tuple[float, float] = (200, 10)
    # Microsoft Graph, per application and tenant (its own bucket, not ARM's).
    graph: tuple[float, float] = (3500, 350)


@dataclass
class Settings:
    # Throttling as ARM does it; the test fixture switches it off except where tested.
    throttling: bool = True
    buckets: Buckets = field(default_factory=Buckets)
    # Added to every ARM and Entra request, in milliseconds (the benchmark sets it).
    latency_ms: float = 0.0
    # A new service principal is "not yet replicated" for this long: role assignments naming it
    # without principalType=ServicePrincipal get 400 PrincipalNotFound.
    principal_replication_seconds: float = 10.0
    # Microsoft Graph is eventually consistent: an object created less than this long ago is answered
    # 404 Request_ResourceNotFound when read back (by id, alternate key or filter). Off by default.
    graph_replication_seconds: float = 0.0
    # Entries per page of a Graph list without $top.
    graph_page_size: int = 100
    # How long one federated-credential write holds its identity; a second write on the same
    # identity inside that window gets 409 ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity.
    fic_write_seconds: float = 0.25
    # A new federated credential is not usable for token exchange for this long (AADSTS70021).
    fic_propagation_seconds: float = 0.0
    role_assignment_limit: int = 4000
    # Cosmos DB SQL role assignments per account.
    cosmos_role_assignment_limit: int = 2000
    fic_limit: int = 20
    # How long AKS long-running operations take before they succeed.
    lro_seconds: float = 2.0
    # Entries per page in list responses that page with nextLink.
    page_size: int = 100
    token_lifetime_seconds: int = 3599
    # Whether seeded clusters get their own kube-apiserver by default (when the binaries exist).
    kube_clusters: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update; unknown names are an error so typos do not pass silently."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            if name == "buckets":
                for bucket, pair in value.items():
                    if not hasattr(self.buckets, bucket):
                        raise ValueError(f"unknown bucket: {bucket}")
                    setattr(self.buckets, bucket, (float(pair[0]), float(pair[1])))
            else:
                current = getattr(self, name)
                setattr(self, name, type(current)(value))
