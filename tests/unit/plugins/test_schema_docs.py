"""The workload schema is declared once, in module_utils/_inventory.py: the docs that describe it must agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.workload_identity.aks.plugins.doc_fragments.workloads import ModuleDocFragment
from ansible_collections.workload_identity.aks.plugins.module_utils._inventory import (
    CONTROLLER_FIELDS,
    CONTROLLER_KINDS,
    ROLE_FIELDS,
    WORKLOAD_FIELDS,
    Field,
)

PROJECT = Path(__file__).resolve().parents[3]


def described(fields: tuple[Field, ...]) -> dict[str, tuple[str, bool, tuple[str, ...]]]:
    return {f.name: (f.type, f.required, f.aliases) for f in fields}


def documented(options: dict[str, Any]) -> dict[str, tuple[str, bool, tuple[str, ...]]]:
    """(type, required, aliases) per option; choices and defaults are checked where the schema has them."""
    return {
        name: (spec["type"], bool(spec.get("required")), tuple(spec.get("aliases") or ()))
        for name, spec in options.items()
    }


def test_the_doc_fragment_is_the_schema() -> None:
    option = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["workloads"]
    suboptions = option["suboptions"]
    assert documented(suboptions) == described(WORKLOAD_FIELDS)
    assert documented(suboptions["roles"]["suboptions"]) == described(ROLE_FIELDS)
    controllers = suboptions["controllers"]["suboptions"]
    assert documented(controllers) == described(CONTROLLER_FIELDS)
    assert tuple(controllers["kind"]["choices"]) == CONTROLLER_KINDS


def test_both_batch_modules_document_the_list_with_the_fragment() -> None:
    for module in ("workload_identities", "service_accounts"):
        source = (PROJECT / "plugins" / "modules" / f"{module}.py").read_text()
        docs = yaml.safe_load(re.search(r'DOCUMENTATION = r"""(.*?)"""', source, re.S).group(1))  # type: ignore[union-attr]
        assert "workload_identity.aks.workloads" in docs["extends_documentation_fragment"]
        assert "workloads" not in docs["options"]  # declared once, in the fragment


def test_the_roles_argument_specs_name_every_field() -> None:
    specs = yaml.safe_load((PROJECT / "roles" / "workloads" / "meta" / "argument_specs.yml").read_text())
    for entry in ("main", "validate"):
        text = " ".join(specs["argument_specs"][entry]["options"]["workloads_list"]["description"])
        for field in WORKLOAD_FIELDS:
            assert f"C({field.name})" in text, (entry, field.name)
    main = " ".join(specs["argument_specs"]["main"]["options"]["workloads_list"]["description"])
    for field in ROLE_FIELDS:
        assert f"C({field.name})" in main, field.name
    assert all(kind in main for kind in CONTROLLER_KINDS)
