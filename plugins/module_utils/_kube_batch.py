# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the Kubernetes side of a cluster's workloads in one call.

The list is checked, every object read and every change planned before the first write, deletions are guarded, then
the plan is applied (in check mode, only reported). ``service_accounts`` runs it; so does ``workload_identities``'
plan (``plan_kubernetes``), in the same module run as the Azure side's plan and with the client ids that plan has just
read: a cluster's plan is then one module process, not two (each costs its interpreter, Ansible's payload and its
imports: about a second of CPU per cluster).

Failures are raised as :class:`Failure`, worded as the module words them, so that each caller decides what a failure
does: the module fails with it; the plan of both sides reports it beside the Azure side's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import Failure, KubeApiError, ValidationError, error_result, problems_result
from ._guard import DEFAULT_PRUNE_MAX, check_deletions, kube_deletions
from ._inventory import validate_workloads, workload_entries
from ._kube_bindings import Bindings
from ._kube_client import KUBE_AUTH_ARGSPEC, KubeClient
from ._kube_helm import ReleaseUnreadable, read_release
from ._kube_plan import report

# How the Kubernetes side treats what it finds (service_accounts' options of these names).
BINDING_OPTIONS: dict[str, Any] = {
    "missing_workloads": {"type": "str", "default": "fail", "choices": ["fail", "warn"]},
    "rebind": {"type": "str", "default": "refuse", "choices": ["refuse", "warn"]},
    "read_release": {
        "type": "dict",
        "options": {"name": {"type": "str", "required": True}, "namespace": {"type": "str", "required": True}},
    },
}
# workload_identities' plan_kubernetes: the cluster's connection as service_accounts takes it (its retry budget is the
# module's own), and the options above.
PLAN_KUBERNETES_ARGUMENT: dict[str, Any] = {
    "type": "dict",
    "options": {
        **{name: option for name, option in KUBE_AUTH_ARGSPEC.items() if name != "retry_budget"},
        **BINDING_OPTIONS,
    },
}


@dataclass(frozen=True)
class KubeRequest:
    """What the caller asks of one cluster's Kubernetes side (service_accounts' options)."""

    cluster: str
    workloads: Any  # as the inventory holds it: checked here, every problem naming the cluster and the field
    identities: list[dict[str, Any]]  # workload_identities' rows: name, identity.client_id and tenant_id
    tenant_id: str | None = None
    state: str = "present"
    prune: bool = False
    missing_workloads: str = "fail"
    rebind: str = "refuse"
    prune_max: int = DEFAULT_PRUNE_MAX
    prune_confirm: str | None = None
    read_release: dict[str, str] | None = None  # {name, namespace}: the webhook chart's release, from Helm's storage


def bind_workloads(
    request: KubeRequest,
    connect: Callable[[], KubeClient],
    *,
    check_mode: bool,
    diff: bool,
    warn: Callable[[str], None],
    on_deprecation: Callable[[str], None],
) -> dict[str, Any]:
    """service_accounts' result for ``request``; :class:`Failure` before any change when the list or the plan has a
    problem. ``connect`` opens the cluster's client only once the list is known to be sound."""
    cluster = request.cluster
    workloads, list_problems = workload_entries(cluster, request.workloads)
    # The same schema and validation as the Azure side, so both read one inventory alike; where the identities
    # live and which roles they hold is the Azure side's business.
    validated = validate_workloads(
        cluster, workloads, identity_resource_group=None, allow_privileged_roles=True, identity_group_required=False
    )
    for message in validated.deprecations:
        on_deprecation(message)
    specs, problems = validated.specs, list_problems + validated.problems
    identities = {w.get("name"): (w.get("identity") or {}) for w in request.identities}
    client_ids = {spec.name: identities.get(spec.name, {}).get("client_id") for spec in specs}
    tenant_id = request.tenant_id or next((i["tenant_id"] for i in identities.values() if i.get("tenant_id")), None)
    present = request.state == "present"
    if present and not check_mode:
        problems.extend(
            f"cluster {cluster}: workload '{name}': identities: no client id (pass the workloads result of "
            "workload_identity.aks.workload_identities)"
            for name, client_id in client_ids.items()
            if not client_id
        )
        if specs and not tenant_id:
            problems.append(f"cluster {cluster}: tenant_id: required (or identities that carry it)")
    if problems:
        raise Failure(problems_result(problems, f"in the workloads of {cluster}"))
    engine = Bindings(connect(), cluster, tenant_id)
    try:
        if present:
            plan = engine.plan_present(specs, client_ids, request.prune, request.missing_workloads, request.rebind)
        else:
            plan = engine.plan_absent(specs, everything=request.prune)
        if plan.problems:
            raise Failure(problems_result(plan.problems, f"on cluster {cluster}, nothing changed"))
        for warning in plan.warnings:
            warn(warning)
        if request.prune:
            units, deletions = kube_deletions(report(plan))
            everything = not specs or not present
            check_deletions(cluster, units, deletions, everything, request.prune_max, request.prune_confirm)
        if not check_mode:
            engine.apply(plan, request.state)
    except KubeApiError as exc:
        raise Failure(error_result(exc, f"cluster {cluster}")) from None
    except ValidationError as exc:
        raise Failure(problems_result(exc.problems, f"on cluster {cluster}, nothing changed")) from None
    result: dict[str, Any] = dict(report(plan))
    if not diff:
        result.pop("diff")
    if request.read_release:
        result.update(release_read(engine.api, request.read_release["namespace"], request.read_release["name"]))
    return result


def release_read(api: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    """``release``, or why it could not be read here (``release_unreadable``): the caller then asks helm itself."""
    try:
        return {"release": read_release(api, namespace, name, os.environ.get("HELM_DRIVER"))}
    except (ReleaseUnreadable, KubeApiError) as exc:  # no permission to list them, say: helm_info may have it
        return {"release_unreadable": f"Helm release {namespace}/{name}: {exc}"}
