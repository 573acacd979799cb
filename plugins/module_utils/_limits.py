# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): what Azure and the webhook accept.

The names, lengths and counts the services enforce, in one place, so that the inventory validator
and the engines refuse the same input before anything is sent (see ../shared/AZURE-FACTS.md).
"""

from __future__ import annotations

import re

# User-assigned identity names.
IDENTITY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
# Federated identity credentials: name, issuer/subject/audience length, per identity.
FIC_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$")
FIC_FIELD_MAX = 600
FICS_PER_IDENTITY = 20
# Tags per resource (ARM): the identity's marks, claims and the inventory's together.
TAGS_PER_RESOURCE = 50
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
# The webhook projects service-account tokens of 1-24 hours (azure.workload.identity/service-account-token-expiration).
TOKEN_EXPIRATION = (3600, 86400)
# Roles that let a workload grant access (write role assignments): refused at any scope unless explicitly allowed.
# By name here, so the offline validation catches them; custom roles with the same capability are caught by their
# permissions once read (_azure_role_assignment.grants_access).
ACCESS_ADMIN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
}
# Roles that change anything they reach: refused at broad scopes unless explicitly allowed.
BROAD_ROLES = {"b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor"}
PRIVILEGED_SCOPE_KINDS = ("managementGroup", "subscription")
# The action that lets a principal grant roles (to itself included).
GRANT_ACTION = "Microsoft.Authorization/roleAssignments/write"
# ARM's tags: a name of 1-512 characters without < > % & \ ? / (and no control character), a value of at most 256.
TAG_NAME_MAX = 512
TAG_VALUE_MAX = 256
TAG_NAME_FORBIDDEN = frozenset("<>%&\\?/")
# The collection's own marks (_ownership): refused as an inventory's tag, so none can be forged or overwritten.
RESERVED_TAGS = frozenset({"managed-by"})
RESERVED_TAG_PREFIX = "wi-"
# Key Vault access policies: the permissions an entry may hold, per kind, spelled as Key Vault's API spells them (it
# compares them in any case); at most this many entries per vault.
KEY_VAULT_TYPE = "Microsoft.KeyVault/vaults"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


KEY_VAULT_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "keys": _words(
        "all encrypt decrypt wrapKey unwrapKey sign verify get list create update import delete backup "
        "restore recover purge release rotate getrotationpolicy setrotationpolicy"
    ),
    "secrets": _words("all get list set delete backup restore recover purge"),
    "certificates": _words(
        "all get list delete create import update managecontacts getissuers listissuers setissuers "
        "deleteissuers manageissuers recover purge backup restore"
    ),
    "storage": _words(
        "all get list delete set update regeneratekey recover purge backup restore setsas listsas getsas deletesas"
    ),
}
KEY_VAULT_POLICY_LIMIT = 1024
# On a vault with access policies, who may change the vault (or its policies) may grant itself any access to its data.
KEY_VAULT_POLICY_ACTIONS = ("Microsoft.KeyVault/vaults/accessPolicies/write", "Microsoft.KeyVault/vaults/write")
# Cosmos DB (NoSQL API) keeps its own role system for data: SQL role definitions (two built in, in every account) and
# at most this many SQL role assignments per account (Microsoft Learn's limit).
COSMOS_ACCOUNT_TYPE = "Microsoft.DocumentDB/databaseAccounts"
COSMOS_BUILT_IN_ROLES = {
    "00000000-0000-0000-0000-000000000001": "Cosmos DB Built-in Data Reader",
    "00000000-0000-0000-0000-000000000002": "Cosmos DB Built-in Data Contributor",
}
# Their data actions, as every account defines them (so that a run naming only these reads no definitions).
_COSMOS_CONTAINERS = "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers"
COSMOS_BUILT_IN_ACTIONS = {
    "00000000-0000-0000-0000-000000000001": (
        "Microsoft.DocumentDB/databaseAccounts/readMetadata",
        f"{_COSMOS_CONTAINERS}/executeQuery",
        f"{_COSMOS_CONTAINERS}/readChangeFeed",
        f"{_COSMOS_CONTAINERS}/items/read",
    ),
    "00000000-0000-0000-0000-000000000002": (
        "Microsoft.DocumentDB/databaseAccounts/readMetadata",
        f"{_COSMOS_CONTAINERS}/*",
        f"{_COSMOS_CONTAINERS}/items/*",
    ),
}
COSMOS_ROLE_ASSIGNMENT_LIMIT = 2000
# An ARM role with one of these on a Cosmos DB account may grant itself any access to its data (SQL role assignments
# and definitions), or read it with the account's keys.
COSMOS_ACCESS_ACTIONS = (
    "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments/write",
    "Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions/write",
    "Microsoft.DocumentDB/databaseAccounts/listKeys/action",
)
# Azure Database for PostgreSQL flexible servers: a workload signs in to a database with an Entra token for this
# audience as its password, as a role mapped to its principal (``pgaadauth``); PostgreSQL's own limit on a name.
POSTGRES_SERVER_TYPE = "Microsoft.DBforPostgreSQL/flexibleServers"
POSTGRES_AUDIENCE = "https://ossrdbms-aad.database.windows.net"
POSTGRES_NAME_MAX = 63
# Roles a workload's database role is not made a member of unless allow_privileged_roles: they administer the server
# (and its Entra roles), or reach its file system and programs.
PRIVILEGED_DATABASE_ROLES = (
    "azure_pg_admin",
    "azuresu",
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
)
