"""Make this checkout importable as ansible_collections.workload_identity.aks for the unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]
ROOT = PROJECT / ".build" / "unit-collections"
LINK = ROOT / "ansible_collections" / "workload_identity" / "aks"
if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    LINK.symlink_to(PROJECT)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
