"""The house rules of plugins/module_utils (see its README), enforced on the source.

- Layering: shared building blocks import only each other; the Kubernetes side (_kube_*) never imports the Azure
  side (_azure_*) or the reverse; a Kubernetes-only module imports no Azure util; verification (_verify*) sits above
  both and nothing below imports it.
- Engines are the only writers: a call that writes (put, create, patch, delete, update, send, create_or_update,
  begin_*, a raw request with a writing verb) appears only in an I/O class (``*Api``, ``*Client``), an ``ensure_*``
  engine or ``Bindings.apply``; never in a module or in the batch code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
UTILS = PLUGINS / "module_utils"
# Every method of the collection's I/O classes and of the SDK clients that changes something.
WRITES = {
    "put",
    "post",
    "create",
    "patch",
    "delete",
    "send",  # ClusterApi.send: an AKS managed-cluster PUT
    "create_or_update",
    "update_tags",
    "upsert",
    "ensure_principal",
    "put_fic",
    "delete_fic",
}
WRITE_PREFIXES = ("begin_",)  # the SDKs' long-running writes (begin_create_or_update, begin_delete, ...)
RAW_REQUESTS = {"request", "_call", "_send", "start"}  # raw requests (Graph, Kubernetes, ARM REST): a write by verb
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}


def is_write(call: ast.Call) -> bool:
    """A write method, or a raw request with a writing verb (Graph's and Kubernetes' clients)."""
    if not isinstance(call.func, ast.Attribute):
        return False
    method = call.func.attr
    if method in WRITES or method.startswith(WRITE_PREFIXES):
        return True
    if method == "update":
        # ApplicationApi.update(object_id, body) is a Graph PATCH; a dict's or a set's update takes one argument.
        return len(call.args) >= 2
    first = call.args[0] if call.args else None
    return method in RAW_REQUESTS and isinstance(first, ast.Constant) and first.value in WRITE_VERBS


KUBE_ONLY_MODULES = {"service_accounts", "service_accounts_info"}


def side(name: str) -> str:
    if name.startswith("_verify"):
        return "verify"  # above both sides: it checks what they made, through their I/O classes
    if name.startswith("_aks_"):
        return "bridge"  # above both sides: Azure's credential configures a Kubernetes connection
    return "azure" if name.startswith("_azure_") else "kube" if name.startswith("_kube_") else "shared"


def util_imports(source: str) -> set[str]:
    """The module_utils a file imports, relative (from ._x) or absolute (...plugins.module_utils._x)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 1:
                found.add(node.module)
            elif ".plugins.module_utils." in f".{node.module}":
                found.add(node.module.rsplit(".", 1)[-1])
    return found


def layering_problems(name: str, source: str) -> list[str]:
    mine = side(name)
    problems = []
    for imported in sorted(util_imports(source)):
        theirs = side(imported)
        if mine == "shared" and theirs != "shared":
            problems.append(f"{name} is a shared building block but imports {imported} ({theirs} side)")
        if {mine, theirs} == {"azure", "kube"}:
            problems.append(f"{name} ({mine} side) imports {imported} ({theirs} side)")
        if theirs == "bridge" and mine not in ("bridge", "verify"):
            problems.append(f"{name} ({mine} side) imports {imported}: the Azure-to-Kubernetes bridge sits above both")
        if theirs == "verify" and mine != "verify":
            problems.append(f"{name} ({mine} side) imports {imported}: verification sits above both sides")
    return problems


def writes_outside_engines(name: str, source: str) -> list[str]:
    """Write calls not inside an I/O class, an ensure_* engine or Bindings.apply."""
    problems: list[str] = []

    def visit(node: ast.AST, where: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, [*where, child.name])
                continue
            if isinstance(child, ast.Call) and is_write(child):
                assert isinstance(child.func, ast.Attribute)
                allowed = any(
                    part.endswith(("Api", "Client")) or part.startswith("ensure_") for part in where
                ) or where[-2:] == ["Bindings", "apply"]
                if not allowed:
                    problems.append(f"{name}: {'.'.join(where) or '<module>'} calls .{child.func.attr}() directly")
            visit(child, where)

    visit(ast.parse(source), [])
    return problems


@pytest.mark.parametrize("path", sorted(UTILS.glob("_*.py")), ids=lambda p: p.stem)
def test_module_utils_import_in_one_direction(path: Path) -> None:
    assert layering_problems(path.stem, path.read_text()) == []


@pytest.mark.parametrize("path", sorted((PLUGINS / "modules").glob("*.py")), ids=lambda p: p.stem)
def test_modules_never_write_and_kubernetes_modules_never_import_azure(path: Path) -> None:
    source = path.read_text()
    assert writes_outside_engines(path.stem, source) == []
    if path.stem in KUBE_ONLY_MODULES:
        assert not {i for i in util_imports(source) if side(i) == "azure"}


@pytest.mark.parametrize("path", sorted(UTILS.glob("_*.py")), ids=lambda p: p.stem)
def test_only_engines_write(path: Path) -> None:
    assert writes_outside_engines(path.stem, path.read_text()) == []


BYPASSES = {
    "put": "self.identities.put(ref, location, tags)",
    "post": "self.client.post(path, body)",
    "create": "self.roles.create(scope, name, body)",
    "patch": "self.kube.patch(path, body, operation)",
    "delete": "self.identities.delete(ref)",
    "update": "self.api.update(app_id, body)",
    "send": "self.clusters.send(group, name, body)",
    "create_or_update": "self.client.user_assigned_identities.create_or_update(group, name, body)",
    "update_tags": "self.client.tags.update_tags(scope, body)",
    "begin_create_or_update": "self.client.managed_clusters.begin_create_or_update(group, name, body)",
    "begin_delete": "self.client.managed_clusters.begin_delete(group, name)",
    "upsert": "self.api.upsert(unique_name, body)",
    "ensure_principal": "self.api.ensure_principal(app_id)",
    "put_fic": "self.api.put_fic(object_id, label, name, body)",
    "delete_fic": "self.api.delete_fic(object_id, label, name)",
    "request POST": 'self.graph.request("POST", path, "create", body)',
    "request PATCH": 'self.graph.request("PATCH", path, "update", body)',
    "_call DELETE": 'self.kube._call("DELETE", path, operation)',
    "_send PUT": 'self.kube._send("PUT", path, body, [])',
}


@pytest.mark.parametrize("call", sorted(BYPASSES.values()), ids=sorted(BYPASSES))
def test_every_write_method_is_caught_outside_the_engines(call: str) -> None:
    """Each way of writing, called from the batch code directly, is found (a synthetic bypass per write method)."""
    bypass = f"class Workloads:\n    def prune(self):\n        {call}\n"
    method = call.split("(")[0].rsplit(".", 1)[-1]
    assert writes_outside_engines("_azure_batch", bypass) == [
        f"_azure_batch: Workloads.prune calls .{method}() directly"
    ]


def test_reads_and_containers_are_not_writes() -> None:
    """A dict's update, a GET through a raw request, a dry run: none is a write."""
    reads = (
        "def plan(groups, role):\n    groups.update({'a': 1})\n    role.update(condition=None)\n"
        "    graph.request('GET', path, 'read')\n    kube._call('GET', path, 'read')\n"
        "    kube.dry_run_create(path, body, 'check')\n"
    )
    assert writes_outside_engines("_azure_batch", reads) == []


def test_the_rules_catch_what_they_forbid() -> None:
    """A test that cannot fail proves nothing: the checks find a bypass and a wrong-way import."""
    bypass = "class Workloads:\n    def prune(self):\n        self.identities.delete(ref)\n"
    assert writes_outside_engines("_azure_batch", bypass) == ["_azure_batch: Workloads.prune calls .delete() directly"]
    engine = (
        "def ensure_identity(api):\n    api.delete(ref)\n"
        "class IdentityApi:\n    def delete(self):\n        self.c.delete()\n"
    )
    assert writes_outside_engines("_azure_identity", engine) == []
    assert layering_problems("_kube_bindings", "from ._azure_identity import IdentityApi\n") == [
        "_kube_bindings (kube side) imports _azure_identity (azure side)"
    ]
    assert layering_problems("_azure_batch", "from ._verify import Verifier\n") == [
        "_azure_batch (azure side) imports _verify: verification sits above both sides"
    ]
    assert layering_problems("_inventory", "from ._kube_client import KubeClient\n") == [
        "_inventory is a shared building block but imports _kube_client (kube side)"
    ]


def own_class_depths(sources: dict[str, str]) -> dict[str, int]:
    """Per class of module_utils: how many of the collection's own classes it inherits from, through its chain."""
    bases: dict[str, list[str]] = {}
    for source in sources.values():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        own = [b for b in bases.get(name, []) if b in bases and b not in seen]
        return max((1 + depth(b, seen | {name}) for b in own), default=0)

    return {name: depth(name) for name in bases}


def test_no_chain_of_base_classes() -> None:
    """Split by composition: a class of module_utils extends at most one of the collection's own (a module type, an
    error type), never a chain of them (the AKS bridge is handed to KubeModule, not a subclass of it)."""
    depths = own_class_depths({p.stem: p.read_text() for p in sorted(UTILS.glob("_*.py"))})
    assert max(depths.values()) <= 1, sorted(depths.items(), key=lambda item: -item[1])[:5]
    chain = "class A: ...\nclass B(A): ...\nclass C(B): ...\nclass D(C): ...\n"
    assert own_class_depths({"_x": chain})["D"] == 3  # the check sees a chain


def test_the_readme_names_every_file() -> None:
    """plugins/module_utils/README.md is the picture a newcomer reads first: it names every file there, and no other."""
    readme = (UTILS / "README.md").read_text()
    files = {p.stem for p in UTILS.glob("_*.py")}
    named = set(re.findall(r"(?<![\w.])(_[a-z][a-z_]*[a-z])\b", readme))
    assert sorted(files - named) == []
    stale = {n for n in named if n.startswith(("_azure", "_kube", "_verify", "_ownership", "_inventory"))} - files
    assert sorted(stale) == []
