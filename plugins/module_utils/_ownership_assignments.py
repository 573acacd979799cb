# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the mark on the role assignments this collection grants.

Azure keeps a principal's role assignments when the principal is deleted (the portal shows them as "Identity not
found"; they count against the subscription's 4000). A role assignment has no tags, but it keeps a ``description``
(up to 1024 characters): the collection ends it with its mark, which names the cluster (and where it is), the workload,
and the identity or application the assignment was granted to. Read back when listing, the mark is what tells an
assignment of a vanished principal that this collection made (and may delete) from an operator's (never touched)::

    [workload_identity.aks format=1 cluster=aks-dev place=<sub>/<rg> workload=<namespace>/<name> identity=<rg>/<name>]

The inventory's own description of the assignment, if any, comes first. ``format=`` (``_ownership.FORMAT_VERSION``)
is written in the marks of new assignments from 0.2.0 on; 0.1.0's marks have none (format 1), and an assignment keeps
the mark it has.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ._ids import assignment_name
from ._ownership import COLLECTION, _other_place

DESCRIPTION_MAX = 1024  # what ARM keeps of a role assignment's description
_NO_PLACE = "-"
_MARK = re.compile(
    r"\[" + re.escape(COLLECTION) + r"(?: format=(?P<format>\d+))? cluster=(?P<cluster>\S+) place=(?P<place>\S+) "
    r"workload=(?P<namespace>[^/\s]+)/(?P<workload>\S+) (?P<kind>identity|application)=(?P<holder>[^\]\s]+)\]$"
)


class AssignmentMark(NamedTuple):
    """Who a role assignment was granted for: a workload of a cluster, through an identity or an application.

    ``holder``: ``<resource group>/<name>`` of a managed identity, or the ``appId`` of an application."""

    cluster: str
    place: str | None
    namespace: str
    workload: str
    kind: str  # identity | application
    holder: str
    format: int | None = None  # as written (None: 0.1.0's, which wrote none: format 1)

    @property
    def text(self) -> str:
        written = f" format={self.format}" if self.format is not None else ""
        return (
            f"[{COLLECTION}{written} cluster={self.cluster} place={self.place or _NO_PLACE} "
            f"workload={self.namespace}/{self.workload} {self.kind}={self.holder}]"
        )

    def of(self, cluster: str, scope: str | None) -> bool:
        """This cluster's (the same name, and the same place when both are known)."""
        return self.cluster == cluster and not _other_place(self.place, scope)

    def described(self) -> str:
        return f"workload {self.namespace}/{self.workload} of cluster {self.cluster}, {self.kind} {self.holder}"


def read_mark(description: str | None) -> AssignmentMark | None:
    """The mark a description ends with, if any."""
    found = _MARK.search(description or "")
    if found is None:
        return None
    place = found["place"]
    return AssignmentMark(
        found["cluster"],
        None if place == _NO_PLACE else place,
        found["namespace"],
        found["workload"],
        found["kind"],
        found["holder"],
        int(found["format"]) if found["format"] else None,
    )


def marked_description(declared: str | None, mark: str) -> str:
    """The description written: the inventory's, then the mark."""
    return f"{declared} {mark}" if declared else mark


def made_by_collection_assignment(
    name: str, description: str | None, scope: str, role_guid: str, principal: str
) -> bool:
    """Granted by this collection: it carries the mark, or the name this collection derives (an assignment it made
    before assignments were marked; an operator's has a name of its own)."""
    return read_mark(description) is not None or name.lower() == assignment_name(scope, role_guid, principal)
