# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what a namespace holds, before deleting it.

A namespace this collection created is deleted on teardown only when nothing but what the collection made (and
removes) is left in it: deleting a namespace deletes everything in it, a team's PersistentVolumeClaims included.
"Everything" is every namespaced kind the API server serves, found by discovery (custom resources and aggregated
APIs too), never a fixed list. A kind that cannot be listed keeps the namespace: what was not checked is not
assumed empty.
"""

from __future__ import annotations

from typing import NamedTuple

from ._errors import KubeApiError
from ._kube_client import KubeClient

# Made in every namespace by Kubernetes itself: nobody's work is lost with them.
AUTOMATIC = {("", "serviceaccounts", "default"), ("", "configmaps", "kube-root-ca.crt")}
# Records of what happened in the namespace, not objects anyone made.
RECORDS = {("", "events"), ("events.k8s.io", "events")}


class Kind(NamedTuple):
    group: str  # "" for the core group
    resource: str  # the plural, as in the URL
    kind: str
    prefix: str  # /api/v1 or /apis/<group>/<version>


class NamespaceContents:
    """Lists a namespace kind by kind; the kinds come from discovery, read once per engine."""

    def __init__(self, api: KubeClient) -> None:
        self.api = api
        self._kinds: list[Kind] | None = None
        self._unlistable: list[str] = []

    def _discover(self) -> list[Kind]:
        if self._kinds is not None:
            return self._kinds
        documents = [("", "/api/v1", self.api.get("/api/v1", "discover the core API"))]
        groups = (self.api.get("/apis", "discover the API groups") or {}).get("groups") or []
        for group in groups:
            version = (group.get("preferredVersion") or {}).get("groupVersion")
            if not version:
                continue
            try:
                documents.append(
                    (group["name"], f"/apis/{version}", self.api.get(f"/apis/{version}", f"discover {version}"))
                )
            except KubeApiError as exc:
                # An aggregated API that is down (503): its objects cannot be seen, so none can be ruled out.
                self._unlistable.append(f"{version} ({exc.status or exc.code})")
        kinds = []
        for group, prefix, document in documents:
            if document is None:
                self._unlistable.append(prefix.removeprefix("/apis/").removeprefix("/api/"))
                continue
            for resource in document.get("resources") or []:
                name = str(resource.get("name") or "")
                listable = "list" in (resource.get("verbs") or [])
                if resource.get("namespaced") and listable and "/" not in name and (group, name) not in RECORDS:
                    kinds.append(Kind(group, name, str(resource.get("kind") or name), prefix))
        self._kinds = kinds
        return kinds

    def remaining(self, namespace: str, removed: set[tuple[str, str, str]]) -> list[str]:
        """What would still be in ``namespace`` once ``removed`` ((group, resource, name) each) is gone.

        Each kind is listed with a limit of one more than the names it may skip: if anything else is there, one of
        those is. A kind that cannot be listed counts as holding something.
        """
        left = [f"objects of {api}, which cannot be listed" for api in self._unlistable]
        for kind in self._discover():
            skipped = {n for g, r, n in AUTOMATIC | removed if (g, r) == (kind.group, kind.resource)}
            path = f"{kind.prefix}/namespaces/{namespace}/{kind.resource}"
            try:
                items = self.api.list(path, f"list {kind.resource} in {namespace}", limit=len(skipped) + 1)
            except KubeApiError as exc:
                if exc.status in (404, 405):
                    continue  # served by discovery but not listable per namespace after all
                left.append(f"{kind.kind} objects, which cannot be listed ({exc.status or exc.code})")
                continue
            left.extend(f"{kind.kind} {i['metadata']['name']}" for i in items if i["metadata"]["name"] not in skipped)
        return left
