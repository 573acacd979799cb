"""The house rules of plugins/module_utils (see its README), enforced on the source.

- Layering: shared building blocks import only each other; the Kubernetes side (_kube_*) never imports the Azure
  side (_azure_*) or the reverse; a Kubernetes-only module imports no Azure util; verification (_verify*) sits above
  both and nothing below imports it.
- Engines are the only writers: a call that writes (put, create, patch, delete, create_or_update, begin_*) appears
  only in an I/O class (``*Api``, ``*Client``), an ``ensure_*`` engine or ``Bindings.apply``; never in a module or
  in the batch code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
UTILS = PLUGINS / "module_utils"
WRITES = {
    "put",
    "create",
    "patch",
    "delete",
    "create_or_update",
    "begin_create_or_update",
    "begin_delete",
    "upsert",
    "ensure_principal",
    "put_fic",
    "delete_fic",
}
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}


def is_write(call: ast.Call) -> bool:
    """A write method, or a raw request with a writing verb (Graph's client)."""
    if not isinstance(call.func, ast.Attribute):
        return False
    if call.func.attr in WRITES:
        return True
    first = call.args[0] if call.args else None
    return call.func.attr == "request" and isinstance(first, ast.Constant) and first.value in WRITE_VERBS


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
