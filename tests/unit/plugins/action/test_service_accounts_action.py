"""The service_accounts action's ``identities_from``: the identities read from registered results on the controller,
handed to the module as ``identities``, without templating the rows."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.workload_identity.aks.plugins.action.service_accounts import ActionModule, identities_from
from ansible_collections.workload_identity.aks.plugins.plugin_utils.progress import ProgressAction

SKIPPED = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}


def row(name: str, client_id: str, tenant_id: str | None = "t") -> dict[str, Any]:
    identity = {"name": f"id-{name}", "client_id": client_id, "tenant_id": tenant_id, "principal_id": "p"}
    return {"name": name, "changed": False, "identity": identity, "federated_credentials": [], "role_assignments": []}


def test_a_converge_s_rows_come_first_and_its_plan_gives_the_workloads_it_reused() -> None:
    planned = {"workloads": [row("a", "old-a"), row("b", "plan-b"), row("c", "plan-c")]}
    converged = {"workloads": [row("a", "new-a")], "reused": ["b", "c"]}
    found = identities_from(["converged", "planned"], {"converged": converged, "planned": planned})
    assert found == [
        {"name": "a", "identity": {"client_id": "new-a", "tenant_id": "t"}},
        {"name": "b", "identity": {"client_id": "plan-b", "tenant_id": "t"}},
        {"name": "c", "identity": {"client_id": "plan-c", "tenant_id": "t"}},
    ]


def test_a_skipped_converge_or_a_plan_that_found_problems_gives_no_rows() -> None:
    failed_plan = {"changed": False, "failed": False, "failed_when_result": False, "problems": ["p"], "msg": "m"}
    assert identities_from(["converged", "planned"], {"converged": SKIPPED, "planned": failed_plan}) == []
    assert identities_from("planned", {"planned": {"workloads": [row("a", "c-a")]}}) == [
        {"name": "a", "identity": {"client_id": "c-a", "tenant_id": "t"}}
    ]


@pytest.mark.parametrize(
    ("names", "task_vars", "says"),
    [
        (["missing"], {}, "missing is not a registered result"),
        (["text"], {"text": "{{ a template }}"}, "text is not a registered result"),
        ([], {}, "names of registered results"),
        ([3], {}, "names of registered results"),
        ({"azure": "x"}, {}, "names of registered results"),
    ],
)
def test_what_is_not_a_registered_result_is_refused_naming_the_option(
    names: Any, task_vars: dict[str, Any], says: str
) -> None:
    with pytest.raises(AnsibleActionFail, match=f"identities_from: .*{says}"):
        identities_from(names, task_vars)


def action(args: dict[str, Any]) -> ActionModule:
    task = SimpleNamespace(args=args, async_val=0, check_mode=True, diff=False, no_log=False)
    return ActionModule(
        task=task,
        connection=SimpleNamespace(transport="local", has_native_async=False, _shell=SimpleNamespace(tmpdir=None)),
        play_context=SimpleNamespace(check_mode=True),
        loader=None,
        templar=None,
        shared_loader_obj=None,
    )


def test_the_module_gets_identities_in_place_of_the_names(monkeypatch: pytest.MonkeyPatch) -> None:
    handed: list[dict[str, Any]] = []
    monkeypatch.setattr(ProgressAction, "run", lambda self, tmp=None, task_vars=None: handed.append(self._task.args))
    planned = {"workloads": [row("a", "c-a")]}
    action({"cluster_name": "aks", "identities_from": ["planned"]}).run(task_vars={"planned": planned})
    assert handed == [
        {"cluster_name": "aks", "identities": [{"name": "a", "identity": {"client_id": "c-a", "tenant_id": "t"}}]}
    ]
    with pytest.raises(AnsibleActionFail, match="either identities or identities_from"):
        action({"identities": [{"name": "a"}], "identities_from": ["planned"]}).run(task_vars={"planned": planned})
