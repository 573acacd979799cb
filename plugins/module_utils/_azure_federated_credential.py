# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): federated identity credentials (FICs).

One engine for both parents a credential can have: a user-assigned identity (through ARM,
:class:`IdentityFicApi`) and an application (through Microsoft Graph, ``_azure_application``'s
``ApplicationFicApi``); each is a :class:`FicParent`. Validated before anything is sent (name pattern,
field lengths, one audience); audiences compared without regard to order; the 20-per-parent limit
and issuer+subject uniqueness refused before the write; concurrent-write 409s retried by the
shared policy.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._azure_errors import azure_call
from ._errors import AzureApiError, ValidationError
from ._ids import IdentityRef, canonical
from ._limits import DEFAULT_AUDIENCE, FIC_FIELD_MAX, FIC_NAME, FICS_PER_IDENTITY
from ._results import FederatedCredentialState, Outcome
from ._retry import RetryPolicy


def validation_problems(
    name: str, issuer: str | None, subject: str | None, audiences: list[str] | None, where: str = ""
) -> list[str]:
    """Every problem with one FIC's fields, each naming the field."""
    prefix = f"{where}: " if where else ""
    problems = []
    if not FIC_NAME.fullmatch(name or ""):
        problems.append(
            f"{prefix}name: '{name}' is not a valid federated credential name (3-120 letters, digits, "
            "'-' and '_', starting with a letter or digit)"
        )
    if not issuer:
        problems.append(f"{prefix}issuer: required")
    elif not issuer.startswith("https://") or len(issuer) > FIC_FIELD_MAX:
        problems.append(f"{prefix}issuer: must be an https URL of at most {FIC_FIELD_MAX} characters")
    if not subject:
        problems.append(f"{prefix}subject: required")
    elif len(subject) > FIC_FIELD_MAX:
        problems.append(f"{prefix}subject: at most {FIC_FIELD_MAX} characters")
    if audiences is not None and (len(audiences) != 1 or not audiences[0] or len(audiences[0]) > FIC_FIELD_MAX):
        problems.append(f"{prefix}audiences: exactly one audience of at most {FIC_FIELD_MAX} characters is supported")
    return problems


def fic_state(model: Any, ref: IdentityRef) -> FederatedCredentialState:
    return {
        "id": canonical(model.id),
        "name": model.name,
        "identity": ref.name,
        "issuer": model.issuer,
        "subject": model.subject,
        "audiences": list(model.audiences or []),
    }


class FederatedCredentialApi:
    def __init__(self, client: Any, policy: RetryPolicy | None = None) -> None:
        self.ops = client.federated_identity_credentials
        self.policy = policy or RetryPolicy()

    def get(self, ref: IdentityRef, name: str) -> FederatedCredentialState | None:
        try:
            model = azure_call(
                f"get federated credential {ref.name}/{name}",
                lambda: self.ops.get(ref.resource_group, ref.name, name),
                self.policy,
            )
        except AzureApiError as exc:
            if exc.status == 404:
                return None
            raise
        return fic_state(model, ref)

    def list_all(self, ref: IdentityRef) -> list[FederatedCredentialState]:
        models = azure_call(
            f"list federated credentials of {ref.name}",
            lambda: list(self.ops.list(ref.resource_group, ref.name)),
            self.policy,
        )
        return [fic_state(m, ref) for m in models]

    def put(
        self, ref: IdentityRef, name: str, issuer: str, subject: str, audiences: list[str]
    ) -> FederatedCredentialState:
        body = {"issuer": issuer, "subject": subject, "audiences": audiences}
        model = azure_call(
            f"create or update federated credential {ref.name}/{name}",
            lambda: self.ops.create_or_update(ref.resource_group, ref.name, name, body),
            self.policy,
        )
        return fic_state(model, ref)

    def delete(self, ref: IdentityRef, name: str) -> None:
        azure_call(
            f"delete federated credential {ref.name}/{name}",
            lambda: self.ops.delete(ref.resource_group, ref.name, name),
            self.policy,
        )


class FicParent(Protocol):
    """Where credentials live: an identity (ARM) or an application (Graph), behind one interface."""

    @property
    def name(self) -> str:
        """The parent's name."""

    @property
    def label(self) -> str:
        """How errors name the parent."""

    def fic_id(self, name: str) -> str:
        """The credential's id under the parent."""

    def get(self, name: str) -> FederatedCredentialState | None:
        """One credential, or None."""

    def list_all(self) -> list[FederatedCredentialState]:
        """Every credential of the parent."""

    def put(self, name: str, issuer: str, subject: str, audiences: list[str]) -> FederatedCredentialState:
        """Create or replace one credential."""

    def delete(self, name: str) -> None:
        """Delete one credential."""


class IdentityFicApi:
    """A user-assigned identity's credentials, through ARM."""

    def __init__(self, api: FederatedCredentialApi, ref: IdentityRef) -> None:
        self.api, self.ref = api, ref

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def label(self) -> str:
        return f"identity {self.ref.name}"

    def fic_id(self, name: str) -> str:
        return f"{self.ref.id}/federatedIdentityCredentials/{name}"

    def get(self, name: str) -> FederatedCredentialState | None:
        return self.api.get(self.ref, name)

    def list_all(self) -> list[FederatedCredentialState]:
        return self.api.list_all(self.ref)

    def put(self, name: str, issuer: str, subject: str, audiences: list[str]) -> FederatedCredentialState:
        return self.api.put(self.ref, name, issuer, subject, audiences)

    def delete(self, name: str) -> None:
        self.api.delete(self.ref, name)


def same_fic(current: FederatedCredentialState, issuer: str, subject: str, audiences: list[str]) -> bool:
    # Issuer and subject are matched exactly by Entra (trailing slash and case count); audiences as a set.
    return (
        current["issuer"] == issuer
        and current["subject"] == subject
        and sorted(current["audiences"]) == sorted(audiences)
    )


def ensure_adopted_credential(
    parent: FicParent, clash: FederatedCredentialState, audiences: list[str], check_mode: bool
) -> Outcome[FederatedCredentialState]:
    """A credential of another name that already trusts the issuer and subject, used under its own name."""
    note = f"adopted existing credential {clash['name']}"
    if sorted(clash["audiences"]) == sorted(audiences):
        return Outcome(False, "unchanged", clash, clash, [note])
    # Its audience differs: updated in place under its own name; deleting and re-creating it would leave the
    # workload unable to sign in for as long as Entra takes to see the new one.
    updated: FederatedCredentialState = {**clash, "audiences": audiences}
    if not check_mode:
        updated = parent.put(clash["name"], clash["issuer"], clash["subject"], audiences)
    return Outcome(True, "updated", clash, updated, [f"{note}, audience updated in place"])


def _refused(
    parent: FicParent,
    name: str,
    issuer: str,
    subject: str,
    clash: FederatedCredentialState | None,
    siblings: int | None,
) -> str | None:
    """Why a credential cannot be written: another already trusts the subject, or (``siblings``: how many others a new
    one joins) the parent is full."""
    if clash:
        return (
            f"federated credential {parent.name}/{name}: '{clash['name']}' on the same {parent.label.split()[0]} "
            f"already trusts issuer {issuer} and subject {subject}"
        )
    if siblings is not None and siblings >= FICS_PER_IDENTITY:
        return (
            f"federated credential {parent.name}/{name}: {parent.label} already has "
            f"{siblings} federated credentials, the most Azure allows ({FICS_PER_IDENTITY})"
        )
    return None


def _named(
    parent: FicParent, name: str, siblings: list[FederatedCredentialState] | None
) -> FederatedCredentialState | None:
    """The credential of this name (case-insensitive, as Entra names them), from the listing when there is one."""
    if siblings is None:
        return parent.get(name)
    return next((f for f in siblings if f["name"].lower() == name.lower()), None)


def ensure_credential_absent(
    parent: FicParent, name: str, siblings: list[FederatedCredentialState] | None, check_mode: bool
) -> Outcome[FederatedCredentialState]:
    """The credential deleted, if it exists."""
    before = _named(parent, name, siblings)
    if before is None:
        return Outcome(False, "absent", None, None)
    if not check_mode:
        parent.delete(name)
    return Outcome(True, "deleted", before, None)


def ensure_written_credential(
    parent: FicParent,
    name: str,
    before: FederatedCredentialState | None,
    trust: tuple[str, str, list[str]],
    check_mode: bool,
) -> Outcome[FederatedCredentialState]:
    """The credential put (created, or updated in place under its name); in check mode, as it would be."""
    issuer, subject, audiences = trust
    after: FederatedCredentialState = {
        "id": parent.fic_id(name),
        "name": name,
        "identity": parent.name,
        "issuer": issuer,
        "subject": subject,
        "audiences": audiences,
    }
    if not check_mode:
        after = parent.put(name, issuer, subject, audiences)
    return Outcome(True, "updated" if before else "created", before, after)


def ensure_federated_credential(
    parent: FicParent,
    name: str,
    *,
    state: str,
    issuer: str | None,
    subject: str | None,
    audiences: list[str] | None,
    check_mode: bool,
    siblings: list[FederatedCredentialState] | None = None,
    adopt: bool = False,
) -> Outcome[FederatedCredentialState]:
    """``siblings``: the parent's FICs when the caller already listed them (the batch path).

    ``adopt``: a credential of another name that already trusts this issuer and subject (made by hand, or by
    the az walkthrough) is used instead of refused, under its own name (its audience updated in place if it
    differs): no duplicate, and no moment in which the workload cannot sign in. Only when this one does not
    exist yet.
    """
    if state == "absent":
        return ensure_credential_absent(parent, name, siblings, check_mode)
    # Everything checkable without Azure is checked before the first request.
    audiences = audiences or [DEFAULT_AUDIENCE]
    problems = validation_problems(name, issuer, subject, audiences, f"federated credential {parent.name}/{name}")
    if problems or not issuer or not subject:  # the second test narrows the types: validated, they are set
        raise ValidationError(
            problems or [f"federated credential {parent.name}/{name}: issuer and subject are required"]
        )
    before = _named(parent, name, siblings)
    if before is not None and same_fic(before, issuer, subject, audiences):
        return Outcome(False, "unchanged", before, before)
    others = siblings if siblings is not None else parent.list_all()
    others = [f for f in others if f["name"].lower() != name.lower()]
    clash = next((f for f in others if f["issuer"] == issuer and f["subject"] == subject), None)
    if clash and adopt and before is None:
        return ensure_adopted_credential(parent, clash, audiences, check_mode)
    problem = _refused(parent, name, issuer, subject, clash, len(others) if before is None else None)
    if problem:
        raise ValidationError([problem])
    return ensure_written_credential(parent, name, before, (issuer, subject, audiences), check_mode)
