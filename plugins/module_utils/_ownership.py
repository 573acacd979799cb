# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): the marks that say what this collection owns.

Prune and teardown act only on what carries these marks, so every tag, label, annotation and name
the collection writes to recognise its own objects again is defined here, and read back here:

- Azure identities it creates: the tag ``managed-by: workload_identity.aks`` and ``wi-cluster``,
  ``wi-cluster-scope``, ``wi-namespace``, ``wi-service-account``, ``wi-workload``; ``wi-tags`` names the
  inventory's tags it set. A cluster is known by its name *and* where it is (``<subscription>/<resource group>``,
  :func:`cluster_scope`): two clusters called ``aks-stg`` in two resource groups are two owners.
- Federated credentials: named after the cluster and subject (:func:`fic_name`), so a cluster's
  own credentials on a shared identity are told apart from others'.
- Kubernetes objects it touches: see ``_ownership_kube``.

**The format is versioned** (``FORMAT_VERSION``): a new identity carries ``wi-format``, a new application the string
tag ``wi-format=<n>``, a new role assignment's mark ``format=<n>`` (``_ownership_assignments``), a new Kubernetes
object the label ``workload-identity.aks/format`` (``_ownership_kube``). An object without it is format 1, as 0.1.0
wrote it. An object keeps the format it was written in: no run rewrites marks for their version alone (that would
touch every object of an estate at once); a later format that must is a migration of its own. What each release
wrote is recorded in ``tests/unit/fixtures/ownership/<version>.json``, and every later release must read it as its
own (``tests/unit/plugins/module_utils/test_ownership_format.py``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

COLLECTION = "workload_identity.aks"

# The format of every mark of this file and of _ownership_assignments and _ownership_kube (see the module's doc).
FORMAT_VERSION = 1
FORMAT_TAG = "wi-format"
APP_FORMAT_TAG_PREFIX = f"{FORMAT_TAG}="


def format_mark() -> dict[str, str]:
    """The tag a new identity carries with its marks: the format they are written in."""
    return {FORMAT_TAG: str(FORMAT_VERSION)}


def written_format(value: str | None) -> int:
    """The format a mark was written in: as recorded, or 1 (0.1.0 recorded none). A value that is not a number was
    edited by hand: the marks beside it are read as the oldest format, which every release reads."""
    return int(value) if value and value.isdigit() else 1


# -- Azure ------------------------------------------------------------------------------------------
OWNER_TAG = "managed-by"
CLUSTER_TAG = "wi-cluster"
NAMESPACE_TAG = "wi-namespace"
SERVICE_ACCOUNT_TAG = "wi-service-account"
WORKLOAD_TAG = "wi-workload"
# Where the cluster is: its name is unique only within its resource group. (Its ARM id would not fit a tag value's 256
# characters; subscription and resource group do, and with the name they are the id.)
CLUSTER_SCOPE_TAG = "wi-cluster-scope"


def cluster_scope(subscription_id: str | None, resource_group: str | None) -> str | None:
    """``<subscription>/<resource group>`` of a cluster, as recorded (lowercase: ARM ignores the case), or None when
    the cluster's resource group is not known (then ownership is by name, as before this was recorded)."""
    if not subscription_id or not resource_group:
        return None
    return f"{subscription_id}/{resource_group}".lower()


def identity_marks(
    cluster: str, namespace: str, service_account: str, workload: str, scope: str | None = None
) -> dict[str, str]:
    """The tags an identity made by this collection for one workload of one cluster carries."""
    return {
        OWNER_TAG: COLLECTION,
        CLUSTER_TAG: cluster,
        **({CLUSTER_SCOPE_TAG: scope} if scope else {}),
        NAMESPACE_TAG: namespace,
        SERVICE_ACCOUNT_TAG: service_account,
        WORKLOAD_TAG: workload,
    }


# The keys of the inventory's own tags (a workload's ``tags``) this collection set on its identity, so that a tag
# dropped from the inventory is removed, and one somebody else added is left alone.
TAGS_RECORD_TAG = "wi-tags"


def tags_with_record(
    current: Mapping[str, str] | None, declared: Mapping[str, str], marks: Mapping[str, str]
) -> dict[str, str]:
    """An identity's tags after declaring ``declared`` on it: the tags this collection set before and the inventory
    no longer declares are dropped, everything else it did not set is kept, and the record names the keys it set."""
    current = dict(current or {})
    before = {k for k in current.pop(TAGS_RECORD_TAG, "").split(",") if k}
    kept = {k: v for k, v in current.items() if k not in before - set(declared)}
    record = {TAGS_RECORD_TAG: ",".join(sorted(declared))} if declared else {}
    return {**kept, **declared, **marks, **record}


def made_by_collection(tags: Mapping[str, str] | None) -> bool:
    """Made by this collection (for any cluster)."""
    return (tags or {}).get(OWNER_TAG) == COLLECTION


def identity_format(tags: Mapping[str, str] | None) -> int | None:
    """The format of the marks of an identity this collection made (None: it did not make it)."""
    return written_format((tags or {}).get(FORMAT_TAG)) if made_by_collection(tags) else None


def owner_cluster(tags: Mapping[str, str] | None) -> str | None:
    """The cluster this collection made the identity for, or None if it did not make it."""
    return (tags or {}).get(CLUSTER_TAG) if made_by_collection(tags) else None


def _other_place(recorded: str | None, scope: str | None) -> bool:
    # Unrecorded (made before the scope was recorded, or by a run that did not know it) is not evidence of another
    # cluster: such an identity stays its name's, and gets the record on its next run.
    return bool(recorded and scope and recorded.lower() != scope.lower())


# An identity this collection made may be used by several clusters (multi-region, blue-green): each records its claim
# in a tag of its own, ``wi-uses:<cluster>`` = ``<subscription>/<resource group>`` of the cluster ("" when unknown).
# A same-named cluster elsewhere claims ``wi-uses:<cluster>:<digest of its place>``. The identity (and its role
# assignments) goes only when the last claim is released. An identity made before claims were recorded is claimed by
# the cluster it was made for (``wi-cluster``, ``wi-cluster-scope``); the first claim written materialises that one.
CLAIM_TAG_PREFIX = "wi-uses:"


class Claim(NamedTuple):
    """One cluster's use of a shared identity or application: the tag that records it, the cluster and its place."""

    key: str
    cluster: str
    scope: str | None

    def described(self) -> str:
        return _owner_described(self.cluster, self.scope)

    def of(self, cluster: str, scope: str | None) -> bool:
        """This cluster's (the same name, and the same place when both are known)."""
        return self.cluster == cluster and not _other_place(self.scope, scope)

    @property
    def tag(self) -> str:
        """How a person removes it: its tag, or, for a claim from before claims were recorded, the marks it is."""
        return f"the tag {self.key}" if self.key else f"the tags {CLUSTER_TAG} and {CLUSTER_SCOPE_TAG}"


def _claims_in(entries: Mapping[str, str], legacy: Claim | None) -> list[Claim]:
    found = [
        Claim(key, key[len(CLAIM_TAG_PREFIX) :].split(":", 1)[0], value or None)
        for key, value in sorted(entries.items())
        if key.startswith(CLAIM_TAG_PREFIX)
    ]
    return found or ([legacy] if legacy is not None else [])


def claims(tags: Mapping[str, str] | None) -> list[Claim]:
    """The clusters that use an identity this collection made (none when it did not make it)."""
    if not made_by_collection(tags):
        return []
    tags = tags or {}
    legacy = Claim("", tags[CLUSTER_TAG], tags.get(CLUSTER_SCOPE_TAG)) if tags.get(CLUSTER_TAG) else None
    return _claims_in(tags, legacy)


def claim_key(entries: Mapping[str, str], cluster: str, scope: str | None) -> str:
    """The tag key of this cluster's claim: ``wi-uses:<cluster>``, unless a same-named cluster elsewhere holds it."""
    plain = f"{CLAIM_TAG_PREFIX}{cluster}"
    held = entries.get(plain)
    if plain not in entries or not _other_place(held or None, scope):
        return plain
    return f"{plain}:{hashlib.sha256(str(scope).lower().encode()).hexdigest()[:8]}"


def with_claims(
    tags: Mapping[str, str], current: list[Claim], clusters: Sequence[tuple[str, str | None]]
) -> dict[str, str]:
    """``tags`` with every current claim written out (a legacy one materialised) and these clusters' claims added."""
    result = {k: v for k, v in tags.items() if not k.startswith(CLAIM_TAG_PREFIX)}
    for claim in current:
        result[claim.key or claim_key(result, claim.cluster, claim.scope)] = claim.scope or ""
    for cluster, scope in clusters:
        if not any(c.of(cluster, scope) for c in _claims_in(result, None)):
            result[claim_key(result, cluster, scope)] = scope or ""
    return result


def without_claim(tags: Mapping[str, str], cluster: str, scope: str | None) -> dict[str, str]:
    """``tags`` with this cluster's claim released (the others, a legacy one included, written out)."""
    kept = [c for c in claims(tags) if not c.of(cluster, scope)]
    return with_claims({k: v for k, v in tags.items() if not k.startswith(CLAIM_TAG_PREFIX)}, kept, [])


def owned_by(tags: Mapping[str, str] | None, cluster: str, scope: str | None = None) -> bool:
    """Made by this collection and used by this cluster (its claim): only such identities are ever changed beyond
    this cluster's own credentials, and deleted when this cluster lets go of them last."""
    return any(c.of(cluster, scope) for c in claims(tags))


def others_claims(tags: Mapping[str, str] | None, cluster: str, scope: str | None = None) -> list[Claim]:
    """The other clusters that use an identity this collection made."""
    return [c for c in claims(tags) if not c.of(cluster, scope)]


def recorded_others(tags: Mapping[str, str] | None, cluster: str, scope: str | None = None) -> list[Claim]:
    """The other clusters' claims written on an identity (``wi-uses:`` tags), never the claim its marks stand for when
    none is written: once this cluster has deleted its own claim, none written means none left (of two clusters
    letting go at once, the marks are not a third)."""
    if not made_by_collection(tags):
        return []
    return [c for c in _claims_in(tags or {}, None) if not c.of(cluster, scope)]


def made_for(tags: Mapping[str, str] | None, cluster: str, scope: str | None = None) -> bool:
    """Made by this collection for this very cluster (the first to use it), whoever uses it now."""
    return (
        made_by_collection(tags)
        and owner_cluster(tags) == cluster
        and not _other_place((tags or {}).get(CLUSTER_SCOPE_TAG), scope)
    )


def place_described(scope: str | None) -> str:
    """A cluster's place as a person reads it ("resource group rg-aks of subscription <id>"), or "" when unknown."""
    if not scope or "/" not in scope:
        return ""
    subscription, group = scope.split("/", 1)
    return f"resource group {group} of subscription {subscription}"


def _owner_described(name: str | None, recorded: str | None) -> str:
    place = place_described(recorded)
    return f"cluster {name}" + (f" in {place}" if place else "")


def foreign_owner(tags: Mapping[str, str] | None, cluster: str, scope: str | None = None) -> str | None:
    """Who else uses the identity this collection made ("cluster aks-prod", or a same-named cluster elsewhere, with
    where it is; "clusters a, b" when several), or None when this cluster uses it or it was not made by this
    collection."""
    if not made_by_collection(tags) or owned_by(tags, cluster, scope):
        return None
    others = others_claims(tags, cluster, scope)
    return ", ".join(c.described() for c in others) or None


# Role assignments this collection created on an identity it did not make, per cluster and workload: ARM cannot
# tell them from the ones an operator made before (same principal, role and scope), so the identity records a
# digest of each (scope, role) it created, and teardown removes only those. Tag values hold 256 characters: the
# record spills into numbered keys (":2", ":3", ...).
CREATED_ROLES_TAG = "wi-created-roles"
_DIGESTS_PER_TAG = 23  # 10 hex characters and a comma each


def role_digest(scope_key: str, role_guid: str) -> str:
    """A short, stable name for one (scope, role definition) pair."""
    return hashlib.sha256(f"{scope_key.lower()}|{role_guid.lower()}".encode()).hexdigest()[:10]


# What a Key Vault access policy entry is recorded as, in the same record as role assignments (an entry carries no
# description for a mark): a digest of (the vault, this word) beside the (scope, role) digests.
ACCESS_POLICY_RECORD = "keyvault-access-policy"


def policy_digest(vault_key: str) -> str:
    return role_digest(vault_key, ACCESS_POLICY_RECORD)


def _created_roles_key(cluster: str, namespace: str, workload: str) -> str:
    return f"{CREATED_ROLES_TAG}:{cluster}:{namespace}:{workload}"


def created_roles_tags(cluster: str, namespace: str, workload: str, digests: set[str]) -> dict[str, str]:
    """The identity tags recording these digests for one workload."""
    key, ordered = _created_roles_key(cluster, namespace, workload), sorted(digests)
    chunks = [ordered[i : i + _DIGESTS_PER_TAG] for i in range(0, len(ordered), _DIGESTS_PER_TAG)]
    return {key if n == 0 else f"{key}:{n + 1}": ",".join(chunk) for n, chunk in enumerate(chunks)}


def created_role_digests(tags: Mapping[str, str] | None, cluster: str, namespace: str, workload: str) -> set[str]:
    """What the identity records as created by this collection for one workload."""
    return {
        d for key in created_roles_keys(tags, cluster, namespace, workload) for d in (tags or {})[key].split(",") if d
    }


def created_roles_keys(tags: Mapping[str, str] | None, cluster: str, namespace: str, workload: str) -> list[str]:
    key = _created_roles_key(cluster, namespace, workload)
    return [k for k in (tags or {}) if k == key or (k.startswith(key + ":") and k[len(key) + 1 :].isdigit())]


# An application made elsewhere (named by application_id) records the same digests in its string tags, as
# "<key>=<digest>,<digest>..." with the key of created_roles_tags, each tag at most 256 characters.
_APP_TAG_MAX = 256


def app_created_roles_tags(cluster: str, namespace: str, workload: str, digests: set[str]) -> list[str]:
    """The application tags recording these digests for one workload."""
    key, ordered = _created_roles_key(cluster, namespace, workload), sorted(digests)
    per_tag = max(1, (_APP_TAG_MAX - len(key) - 4) // 11)
    chunks = [ordered[i : i + per_tag] for i in range(0, len(ordered), per_tag)]
    return [f"{key if n == 0 else f'{key}:{n + 1}'}={','.join(chunk)}" for n, chunk in enumerate(chunks)]


def app_created_roles_entries(tags: list[str] | None, cluster: str, namespace: str, workload: str) -> list[str]:
    """The application's tags that are this workload's record."""
    as_keys = {t.split("=", 1)[0]: t for t in tags or [] if "=" in t}
    return [as_keys[k] for k in created_roles_keys(dict.fromkeys(as_keys, ""), cluster, namespace, workload)]


def app_created_role_digests(tags: list[str] | None, cluster: str, namespace: str, workload: str) -> set[str]:
    """What the application records as created by this collection for one workload."""
    entries = app_created_roles_entries(tags, cluster, namespace, workload)
    return {d for entry in entries for d in entry.split("=", 1)[1].split(",") if d}


# Applications carry string tags (Graph has no key/value tags): the collection's and this cluster's.
APP_CLUSTER_TAG_PREFIX = "wi-cluster:"
APP_WORKLOAD_TAG_PREFIX = "wi-workload:"
APP_CLUSTER_SCOPE_TAG_PREFIX = "wi-cluster-scope:"


def application_marks(cluster: str, namespace: str, workload: str, scope: str | None = None) -> list[str]:
    """The tags of an application this collection made for one workload of one cluster."""
    where = [f"{APP_CLUSTER_SCOPE_TAG_PREFIX}{scope}"] if scope else []
    return [
        COLLECTION,
        f"{APP_CLUSTER_TAG_PREFIX}{cluster}",
        *where,
        f"{APP_WORKLOAD_TAG_PREFIX}{namespace}/{workload}",
    ]


def application_workloads(tags: list[str] | None) -> list[tuple[str, str]]:
    """The (namespace, workload) pairs an application's marks say this collection made it for."""
    marks = [t.removeprefix(APP_WORKLOAD_TAG_PREFIX) for t in tags or [] if t.startswith(APP_WORKLOAD_TAG_PREFIX)]
    return [(m.split("/", 1)[0], m.split("/", 1)[1]) for m in marks if "/" in m]


def application_format_mark() -> str:
    """The string tag a new application carries with its marks: the format they are written in."""
    return f"{APP_FORMAT_TAG_PREFIX}{FORMAT_VERSION}"


def application_format(tags: list[str] | None) -> int | None:
    """The format of the marks of an application this collection made (None: it did not make it)."""
    if application_owner_cluster(tags) is None:
        return None
    recorded = next(
        (t.removeprefix(APP_FORMAT_TAG_PREFIX) for t in tags or [] if t.startswith(APP_FORMAT_TAG_PREFIX)), None
    )
    return written_format(recorded)


def _app_scope(tags: list[str] | None) -> str | None:
    return next(
        (
            t.removeprefix(APP_CLUSTER_SCOPE_TAG_PREFIX)
            for t in tags or []
            if t.startswith(APP_CLUSTER_SCOPE_TAG_PREFIX)
        ),
        None,
    )


def application_claims(tags: list[str] | None) -> list[Claim]:
    """As :func:`claims`, for an application's string tags (``wi-uses:<cluster>=<place>``)."""
    tags = tags or []
    owner = application_owner_cluster(tags)
    if owner is None:
        return []
    entries = dict(t.split("=", 1) for t in tags if t.startswith(CLAIM_TAG_PREFIX) and "=" in t)
    return _claims_in(entries, Claim("", owner, _app_scope(tags)))


def application_with_claims(
    tags: list[str], current: list[Claim], clusters: Sequence[tuple[str, str | None]]
) -> list[str]:
    """As :func:`with_claims`, for an application's string tags."""
    entries = with_claims({}, current, clusters)
    return [t for t in tags if not t.startswith(CLAIM_TAG_PREFIX)] + [f"{k}={v}" for k, v in sorted(entries.items())]


def application_without_claim(tags: list[str], cluster: str, scope: str | None) -> list[str]:
    """As :func:`without_claim`, for an application's string tags."""
    kept = [c for c in application_claims(tags) if not c.of(cluster, scope)]
    return application_with_claims(tags, kept, [])


def application_claim_tag(cluster: str, scope: str | None) -> str:
    """This cluster's claim as an application carries it (what a Graph filter finds its applications by)."""
    return f"{CLAIM_TAG_PREFIX}{cluster}={scope or ''}"


def application_made_for(tags: list[str] | None, cluster: str, scope: str | None = None) -> bool:
    """An application this collection made for this cluster (the same name, and the same place when recorded)."""
    return application_owner_cluster(tags) == cluster and not _other_place(_app_scope(tags), scope)


def application_owned_by(tags: list[str] | None, cluster: str, scope: str | None = None) -> bool:
    """An application this collection made that this cluster uses (its claim is on it)."""
    return any(c.of(cluster, scope) for c in application_claims(tags))


def application_others(tags: list[str] | None, cluster: str, scope: str | None = None) -> list[Claim]:
    """The other clusters that use an application this collection made."""
    return [c for c in application_claims(tags) if not c.of(cluster, scope)]


def application_foreign_owner(tags: list[str] | None, cluster: str, scope: str | None = None) -> str | None:
    """As :func:`foreign_owner`, for an application's string tags."""
    if application_owner_cluster(tags) is None or application_owned_by(tags, cluster, scope):
        return None
    return ", ".join(c.described() for c in application_others(tags, cluster, scope)) or None


def application_cluster_tag(cluster: str) -> str:
    return f"{APP_CLUSTER_TAG_PREFIX}{cluster}"


def application_owner_cluster(tags: list[str] | None) -> str | None:
    """The cluster this collection made the application for, or None if it did not make it."""
    tags = tags or []
    if COLLECTION not in tags:
        return None
    return next((t.removeprefix(APP_CLUSTER_TAG_PREFIX) for t in tags if t.startswith(APP_CLUSTER_TAG_PREFIX)), None)


def default_application_unique_name(cluster: str, namespace: str, workload: str) -> str:
    """Stable per cluster and workload: the key Graph's upsert finds the application by."""
    return f"wi-{cluster}-{namespace}-{workload}"


def fic_name(cluster: str, subject: str, issuer: str | None = None) -> str:
    """One credential per cluster and subject, named so a person (and prune) can tell which is which.

    With ``issuer``: the name for when the plain one is taken, on an identity shared with another cluster of the
    same name, by a credential trusting another issuer (the issuer's digest tells the two apart).
    """
    readable = re.sub(r"[^a-zA-Z0-9-_]", "-", f"{cluster}-{subject.removeprefix('system:serviceaccount:')}")
    readable = readable.strip("-_")
    if issuer is None and len(readable) <= 120 and re.match(r"^[a-zA-Z0-9]", readable):
        return readable
    digest = hashlib.sha256(f"{cluster}|{subject}|{issuer or ''}".encode()).hexdigest()[:10]
    return f"{readable[:109].rstrip('-_')}-{digest}"


def own_credential_names(
    cluster: str, subjects: list[str], issuer: str | None, credentials: Sequence[Mapping[str, Any]]
) -> list[str]:
    """This cluster's credentials for these subjects among a parent's: named by :func:`fic_name` (either form) and,
    when the issuer is known, trusting it (a same-named cluster's credential of the plain name is not this one's)."""
    names = {fic_name(cluster, s).lower() for s in subjects} | {fic_name(cluster, s, issuer).lower() for s in subjects}
    return [
        str(c["name"])
        for c in credentials
        if str(c["name"]).lower() in names and (issuer is None or c.get("issuer") == issuer)
    ]
