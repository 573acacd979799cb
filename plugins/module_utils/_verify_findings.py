# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what verification finds, and how it is said.

A workload's chain is checked link by link, in the order a pod's sign-in goes through it; the first
broken link stops the chain and is the one finding named, with its remedy. The access review (roles
the principal holds beyond what it declares) reads Azure as the automation principal, not through the
chain, so it is checked whenever the principal exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# In chain order. "assignments" is the access review, outside the chain.
LINKS = ("identity", "service_account", "pod_template", "webhook", "sign_in", "permissions", "assignments")
CHAIN = LINKS[:-1]

# Entra's answers to a token exchange, as plain causes.
AADSTS_CAUSES = {
    "70021": "no federated credential of the identity matches the token (none at all, or none visible yet)",
    "700211": "no federated credential trusts the token's issuer (the cluster's issuer URL, its trailing slash and "
    "case included)",
    "700212": "no federated credential with that issuer and subject lists the audience api://AzureADTokenExchange",
    "700213": "no federated credential trusts the token's subject (system:serviceaccount:<namespace>:<account>)",
    "7002138": "a federated credential's subject differs from the token's only in case (matching is case-sensitive)",
    "700016": "no application with this client id in the tenant (the identity was deleted, or the client id is wrong)",
    "700024": "the token is expired or not yet valid (the clocks of the cluster and Entra disagree?)",
    "700027": "the token's signature does not verify with the keys the issuer publishes (a rotated signing key?)",
    "50166": "Entra could not read the issuer's discovery document (the OIDC issuer is not published)",
    "90002": "the tenant does not exist",
}
# Codes that a credential just written can give until Entra has propagated it (about a minute).
PROPAGATION_CODES = frozenset({"70021", "700211", "700212", "700213"})


def aadsts_code(message: str) -> str | None:
    found = re.search(r"AADSTS(\d+)", message)
    return found.group(1) if found else None


def aadsts_cause(message: str) -> str:
    """Entra's refusal in plain words, with its code; never the request (the token is not in Entra's answer)."""
    code = aadsts_code(message)
    if code is None:
        return f"Entra refused the exchange: {message[:300]}"
    cause = AADSTS_CAUSES.get(code)
    if cause:
        return f"AADSTS{code}: {cause}"
    said = message[message.index(f"AADSTS{code}") :]
    return said.splitlines()[0][:300]


@dataclass
class Finding:
    link: str
    message: str
    remedy: str
    accepted: str | None = None  # why it is accepted, when the inventory says so

    def as_dict(self) -> dict[str, Any]:
        return {"link": self.link, "message": self.message, "remedy": self.remedy, "accepted": self.accepted}


@dataclass
class Verdict:
    """One workload's chain as checked: each link's status, the findings, what the report shows of it."""

    name: str
    namespace: str
    service_account: str
    identity: dict[str, Any] = field(default_factory=dict)  # kind, name, client_id, principal_id, tenant_id
    credential: dict[str, Any] | None = None  # the credential that trusts this cluster's token
    roles: list[dict[str, Any]] = field(default_factory=list)  # role, scope, granted (None: not checked)
    links: dict[str, str] = field(default_factory=dict)  # link -> ok | broken | accepted | not checked
    findings: list[Finding] = field(default_factory=list)
    sign_in_wait: float | None = None  # seconds waited for a new credential to propagate
    details: list[str] = field(default_factory=list)  # what was checked, in plain words

    def broken(self) -> bool:
        """Whether the chain stopped (an accepted break stops it too: there is nothing to check past it)."""
        return any(f.link in CHAIN for f in self.findings)

    def find(self, link: str, message: str, remedy: str) -> None:
        self.findings.append(Finding(link, message, remedy))
        self.links[link] = "broken"

    def passed(self, link: str, detail: str | None = None) -> None:
        self.links.setdefault(link, "ok")
        if detail:
            self.details.append(detail)

    @property
    def verified(self) -> bool:
        return all(f.accepted for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        links = [{"link": link, "status": self.links.get(link, "not checked")} for link in LINKS]
        return {
            "name": self.name,
            "namespace": self.namespace,
            "service_account": self.service_account,
            "identity": self.identity,
            "credential": self.credential,
            "roles": self.roles,
            "links": links,
            "findings": [f.as_dict() for f in self.findings],
            "verified": self.verified,
            "sign_in_wait": self.sign_in_wait,
            "details": self.details,
        }


def accept(verdicts: list[Verdict], accepted: list[dict[str, Any]]) -> None:
    """Mark the findings the inventory accepts (by workload and link, and a text the finding contains if given)."""
    for verdict in verdicts:
        for finding in verdict.findings:
            for entry in accepted:
                if (
                    entry.get("workload") == verdict.name
                    and entry.get("link") == finding.link
                    and (not entry.get("matching") or str(entry["matching"]) in finding.message)
                ):
                    finding.accepted = str(entry.get("reason") or "accepted in the inventory")
                    verdict.links[finding.link] = "accepted"
                    break


def accepted_problems(cluster: str, accepted: Any, names: set[str]) -> list[str]:
    """Mistakes in the accepted findings, each naming the cluster, the entry and the field."""
    problems: list[str] = []
    if not isinstance(accepted, list):
        return [f"cluster {cluster}: workload_identity_verify_accepted: must be a list (got {type(accepted).__name__})"]
    for number, entry in enumerate(accepted, 1):
        where = f"cluster {cluster}: workload_identity_verify_accepted #{number}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping with workload, link and reason")
            continue
        unknown = sorted(set(entry) - {"workload", "link", "reason", "matching"})
        if unknown:
            problems.append(f"{where}: {', '.join(unknown)}: unknown (workload, link, reason, matching)")
        if entry.get("workload") not in names:
            problems.append(f"{where}: workload: '{entry.get('workload')}' is not a workload of this cluster")
        if entry.get("link") not in LINKS:
            problems.append(f"{where}: link: must be one of {', '.join(LINKS)} (got {entry.get('link')!r})")
        if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
            problems.append(f"{where}: reason: say why it is accepted (it is shown in the access review)")
    return problems


def summary(verdicts: list[Verdict]) -> dict[str, int]:
    findings = [f for v in verdicts for f in v.findings]
    return {
        "workloads": len(verdicts),
        "verified": sum(1 for v in verdicts if v.verified),
        "findings": sum(1 for f in findings if not f.accepted),
        "accepted": sum(1 for f in findings if f.accepted),
    }
