"""The order the integration files start in: the longest first, so that two workers end together.

`make integration` runs the files on two workers, a whole file each at a time (``--dist loadfile``) in collection
order (``--no-loadscope-reorder``: xdist would otherwise start the files with the most tests first, and the few long
scenarios, such as discovery and the multi-cluster estate, would start last and run alone at the end). The list is
from `--durations` on CI's machine; a file not in it starts after these, in the usual order (azwi's among them:
it waits for azwi's build, which a fresh machine finishes during the first of these).
"""

from __future__ import annotations

import pytest

LONGEST_FIRST = [
    "kube/test_multi_cluster.py",
    "kube/test_rollout.py",
    "kube/test_discover.py",
    "kube/test_verify.py",
    "kube/test_app_registrations.py",
    "kube/test_interruptions.py",
    "kube/test_install.py",
    "kube/test_adoption.py",
    "modules/test_bad_input_matrix.py",
    "kube/test_webhook.py",
    "kube/test_azure_access.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0].removeprefix("tests/integration/")
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: a file's tests keep their order
