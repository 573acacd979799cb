"""Built-in role definitions (real GUIDs, names and permissions) and permission evaluation."""

from __future__ import annotations

import functools
import re
from typing import Any

_COMMON_READ = [
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
]
_KV_READ = [
    *_COMMON_READ,
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
]
_BLOB = "Microsoft.Storage/storageAccounts/blobServices"
_QUEUE = "Microsoft.Storage/storageAccounts/queueServices"

# (guid, name, description, actions, notActions, dataActions, notDataActions)
_BUILT_IN: list[tuple[str, str, str, list[str], list[str], list[str], list[str]]] = [
    (
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        ["*"],
        [],
        [],
        [],
    ),
    (
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, "
        "manage assignments in Azure Blueprints, or share image galleries.",
        ["*"],
        [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ],
        [],
        [],
    ),
    (
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        ["*/read"],
        [],
        [],
        [],
    ),
    (
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "User Access Administrator",
        "Lets you manage user access to Azure resources.",
        ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        [],
        [],
        [],
    ),
    (
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        "Role Based Access Control Administrator",
        "Manage access to Azure resources by assigning roles using Azure RBAC. This role does not allow you to "
        "manage access using other ways, such as Azure Policy.",
        [
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ],
        [],
        [],
        [],
    ),
    (
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "Storage Blob Data Contributor",
        "Read, write, and delete Azure Storage containers and blobs.",
        [
            f"{_BLOB}/containers/delete",
            f"{_BLOB}/containers/read",
            f"{_BLOB}/containers/write",
            f"{_BLOB}/generateUserDelegationKey/action",
        ],
        [],
        [
            f"{_BLOB}/containers/blobs/delete",
            f"{_BLOB}/containers/blobs/read",
            f"{_BLOB}/containers/blobs/write",
            f"{_BLOB}/containers/blobs/move/action",
            f"{_BLOB}/containers/blobs/add/action",
        ],
        [],
    ),
    (
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "Storage Blob Data Reader",
        "Read and list Azure Storage containers and blobs.",
        [f"{_BLOB}/containers/read", f"{_BLOB}/generateUserDelegationKey/action"],
        [],
        [f"{_BLOB}/containers/blobs/read"],
        [],
    ),
    (
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "Storage Blob Data Owner",
        "Provides full access to Azure Storage blob containers and data, including assigning POSIX access control.",
        [f"{_BLOB}/containers/*", f"{_BLOB}/generateUserDelegationKey/action"],
        [],
        [f"{_BLOB}/containers/blobs/*"],
        [],
    ),
    (
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
        "Storage Queue Data Contributor",
        "Read, write, and delete Azure Storage queues and queue messages.",
        [f"{_QUEUE}/queues/delete", f"{_QUEUE}/queues/read", f"{_QUEUE}/queues/write"],
        [],
        [
            f"{_QUEUE}/queues/messages/delete",
            f"{_QUEUE}/queues/messages/read",
            f"{_QUEUE}/queues/messages/write",
            f"{_QUEUE}/queues/messages/process/action",
        ],
        [],
    ),
    (
        "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets User",
        "Read secret contents. Only works for key vaults that use the 'Azure role-based access control' "
        "permission model.",
        [],
        [],
        ["Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"],
        [],
    ),
    (
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "Key Vault Secrets Officer",
        "Perform any action on the secrets of a key vault, except manage permissions.",
        _KV_READ,
        [],
        ["Microsoft.KeyVault/vaults/secrets/*"],
        [],
    ),
    (
        "21090545-7ca7-4776-b22c-e363652d74d2",
        "Key Vault Reader",
        "Read metadata of key vaults and its certificates, keys, and secrets.",
        _KV_READ,
        [],
        ["Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"],
        [],
    ),
    (
        "7f951dda-4ed3-4680-a7ca-43fe172d538d",
        "AcrPull",
        "acr pull",
        ["Microsoft.ContainerRegistry/registries/pull/read"],
        [],
        [],
        [],
    ),
    (
        "8311e382-0749-4cb8-b61a-304f252e45ec",
        "AcrPush",
        "acr push",
        ["Microsoft.ContainerRegistry/registries/pull/read", "Microsoft.ContainerRegistry/registries/push/write"],
        [],
        [],
        [],
    ),
    (
        "f1a07417-d97a-45cb-824c-7a7467783830",
        "Managed Identity Operator",
        "Read and Assign User Assigned Identity",
        [
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            *_COMMON_READ,
        ],
        [],
        [],
        [],
    ),
    (
        "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
        "Azure Service Bus Data Sender",
        "Allows for send access to Azure Service Bus resources.",
        [
            "Microsoft.ServiceBus/*/queues/read",
            "Microsoft.ServiceBus/*/topics/read",
            "Microsoft.ServiceBus/*/topics/subscriptions/read",
        ],
        [],
        ["Microsoft.ServiceBus/*/send/action"],
        [],
    ),
    (
        "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
        "Azure Service Bus Data Receiver",
        "Allows for receive access to Azure Service Bus resources.",
        [
            "Microsoft.ServiceBus/*/queues/read",
            "Microsoft.ServiceBus/*/topics/read",
            "Microsoft.ServiceBus/*/topics/subscriptions/read",
        ],
        [],
        ["Microsoft.ServiceBus/*/receive/action"],
        [],
    ),
    (
        "2b629674-e913-4c01-ae53-ef4638d8f975",
        "Azure Event Hubs Data Sender",
        "Allows send access to Azure Event Hubs resources.",
        ["Microsoft.EventHub/*/eventhubs/read"],
        [],
        ["Microsoft.EventHub/*/send/action"],
        [],
    ),
    (
        "a638d3c7-ab3a-418d-83e6-5f17a39d4fde",
        "Azure Event Hubs Data Receiver",
        "Allows receive access to Azure Event Hubs resources.",
        ["Microsoft.EventHub/*/eventhubs/consumergroups/read"],
        [],
        ["Microsoft.EventHub/*/receive/action"],
        [],
    ),
    (
        "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
        "Azure Kubernetes Service Cluster User Role",
        "List cluster user credential action.",
        [
            "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
            "Microsoft.ContainerService/managedClusters/read",
        ],
        [],
        [],
        [],
    ),
]


def built_in_roles() -> dict[str, dict[str, Any]]:
    """GUID (lower case) -> role definition properties, as ARM returns them."""
    roles: dict[str, dict[str, Any]] = {}
    for guid, name, description, actions, not_actions, data_actions, not_data_actions in _BUILT_IN:
        roles[guid] = {
            "roleName": name,
            "type": "BuiltInRole",
            "description": description,
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": list(actions),
                    "notActions": list(not_actions),
                    "dataActions": list(data_actions),
                    "notDataActions": list(not_data_actions),
                }
            ],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2024-04-16T18:25:55.2103735Z",
            "createdBy": None,
            "updatedBy": None,
        }
    return roles


@functools.lru_cache(maxsize=4096)
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in glob.split("*")) + "$", re.IGNORECASE)


def action_matches(glob: str, action: str) -> bool:
    return bool(_pattern(glob).match(action))


def permits(permissions: list[dict[str, Any]], action: str, data_action: bool = False) -> bool:
    """Whether a role's permission blocks allow ``action`` (actions minus notActions)."""
    allow_key, deny_key = ("dataActions", "notDataActions") if data_action else ("actions", "notActions")
    for block in permissions:
        if any(action_matches(g, action) for g in block.get(allow_key) or []) and not any(
            action_matches(g, action) for g in block.get(deny_key) or []
        ):
            return True
    return False
