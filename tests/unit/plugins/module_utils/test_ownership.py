"""_ownership: the marks that say what this collection made, written and read in one place."""

from __future__ import annotations

from ansible_collections.workload_identity.aks.plugins.module_utils._limits import FIC_NAME
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import fic_name


def test_fic_names_are_readable_valid_and_stable() -> None:
    assert fic_name("aks-prod", "system:serviceaccount:orders:orders-api") == "aks-prod-orders-orders-api"
    long = fic_name("aks-" + "x" * 80, "system:serviceaccount:" + "n" * 60 + ":" + "s" * 60)
    assert len(long) <= 120 and FIC_NAME.match(long)
    assert long == fic_name("aks-" + "x" * 80, "system:serviceaccount:" + "n" * 60 + ":" + "s" * 60)
    assert FIC_NAME.match(fic_name("c", "https://github.com/org/repo:ref:refs/heads/main"))
