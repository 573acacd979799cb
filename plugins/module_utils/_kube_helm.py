# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): a Helm release read from Helm's own storage.

Helm 3 keeps each revision of a release in the release's namespace, as a Secret (its default driver) or a ConfigMap
(``HELM_DRIVER=configmap``) labelled ``owner=helm`` and ``name=<release>``, holding the release as base64 of gzipped
JSON. Reading that is one list request in the module that already talks to the cluster, where ``helm list`` and
``helm get values`` (what kubernetes.core.helm_info runs) cost a module run and a binary start each. The answer is
shaped as helm_info's ``status``; as ``helm list`` does by default, only the latest revision counts, and only when it
is deployed or failed.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from typing import Any

from ._kube_client import KubeClient

GZIP_MAGIC = b"\x1f\x8b\x08"
# What `helm list` shows without --all and the like.
LISTED_STATES = ("deployed", "failed")
# HELM_DRIVER values and where each keeps releases; other drivers (sql, memory) cannot be read here.
STORAGE = {
    "": "secrets",
    "secret": "secrets",
    "secrets": "secrets",
    "configmap": "configmaps",
    "configmaps": "configmaps",
}


class ReleaseUnreadable(Exception):
    """Where Helm keeps its releases cannot be read here (another storage driver, an undecodable record)."""


def storage_of(driver: str | None) -> str:
    """The kind Helm stores releases as under HELM_DRIVER ``driver``."""
    found = STORAGE.get((driver or "").strip().lower())
    if found is None:
        raise ReleaseUnreadable(f"HELM_DRIVER={driver} keeps releases where this module does not read them")
    return found


def decode_release(stored: str, base64_wrapped: bool) -> dict[str, Any]:
    """A release record as Helm wrote it: base64 of (usually gzipped) JSON; a Secret's data is base64 once more."""
    try:
        raw = base64.b64decode(stored)
        if base64_wrapped:
            raw = base64.b64decode(raw)
        if raw[:3] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
        return dict(json.loads(raw))
    except (binascii.Error, OSError, EOFError, ValueError, TypeError) as exc:
        raise ReleaseUnreadable(f"a release record that does not decode as Helm writes them ({exc})") from exc


def helm_status(release: dict[str, Any]) -> dict[str, Any]:
    """The release as kubernetes.core.helm_info's ``status`` holds it (``helm list`` plus ``helm get values``),
    without the manifest, notes and hooks."""
    info = release.get("info") or {}
    chart = (release.get("chart") or {}).get("metadata") or {}
    return {
        "name": release.get("name"),
        "namespace": release.get("namespace"),
        "revision": str(release.get("version")),
        "updated": info.get("last_deployed"),
        "status": info.get("status"),
        "chart": f"{chart.get('name')}-{chart.get('version')}",
        "app_version": chart.get("appVersion"),
        "values": release.get("config") or {},
    }


def read_release(api: KubeClient, namespace: str, name: str, driver: str | None = None) -> dict[str, Any]:
    """The release's status as ``helm list`` shows it (its latest revision, when deployed or failed); empty when
    there is none. One request."""
    kind = storage_of(driver)
    records = api.list(
        f"/api/v1/namespaces/{namespace}/{kind}",
        f"read Helm release {namespace}/{name}",
        selector=f"owner=helm,name={name}",
    )
    latest: tuple[int, dict[str, Any]] | None = None
    for record in records:
        version = str(((record.get("metadata") or {}).get("labels") or {}).get("version") or "")
        if version.isdigit() and (latest is None or int(version) > latest[0]):
            latest = (int(version), record)
    if latest is None:
        return {}
    stored = (latest[1].get("data") or {}).get("release")
    if not stored:
        raise ReleaseUnreadable(f"{kind} of revision {latest[0]} holds no release record")
    release = decode_release(str(stored), base64_wrapped=kind == "secrets")
    if (release.get("info") or {}).get("status") not in LISTED_STATES:
        return {}
    return helm_status(release)
