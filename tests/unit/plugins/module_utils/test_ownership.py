"""_ownership: the marks that say what this collection made, written and read in one place."""

from __future__ import annotations

from ansible_collections.workload_identity.aks.plugins.module_utils._limits import FIC_NAME
from ansible_collections.workload_identity.aks.plugins.module_utils._ownership import fic_name, tags_with_record


def test_fic_names_are_readable_valid_and_stable() -> None:
    assert fic_name("aks-prod", "system:serviceaccount:orders:orders-api") == "aks-prod-orders-orders-api"
    long = fic_name("aks-" + "x" * 80, "system:serviceaccount:" + "n" * 60 + ":" + "s" * 60)
    assert len(long) <= 120 and FIC_NAME.match(long)
    assert long == fic_name("aks-" + "x" * 80, "system:serviceaccount:" + "n" * 60 + ":" + "s" * 60)
    assert FIC_NAME.match(fic_name("c", "https://github.com/org/repo:ref:refs/heads/main"))


def test_a_tag_the_inventory_dropped_goes_one_set_elsewhere_stays() -> None:
    marks = {"managed-by": "workload_identity.aks"}
    first = tags_with_record({"owner": "platform"}, {"team": "orders", "cost": "42"}, marks)
    assert first == {"owner": "platform", "team": "orders", "cost": "42", **marks, "wi-tags": "cost,team"}
    dropped = tags_with_record(first, {"team": "orders"}, marks)
    assert dropped == {"owner": "platform", "team": "orders", **marks, "wi-tags": "team"}
    none_left = tags_with_record(dropped, {}, marks)
    assert none_left == {"owner": "platform", **marks}
    # An identity made before the record existed: its tags are not known to be this collection's, so they stay.
    assert tags_with_record({"cost": "42", **marks}, {}, marks) == {"cost": "42", **marks}
