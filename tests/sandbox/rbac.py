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

# Azure RBAC for Kubernetes (AKS's built-in data-plane roles), as the built-in roles reference lists them.
_AKS = "Microsoft.ContainerService/managedClusters"
_AKS_RBAC_ACTIONS = [
    "Microsoft.Authorization/*/read",
    "Microsoft.Resources/subscriptions/operationresults/read",
    "Microsoft.Resources/subscriptions/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
]
_AKS_READER_PATHS = [
    "apps/controllerrevisions",
    "apps/daemonsets",
    "apps/deployments",
    "apps/replicasets",
    "apps/statefulsets",
    "autoscaling/horizontalpodautoscalers",
    "batch/cronjobs",
    "batch/jobs",
    "configmaps",
    "discovery.k8s.io/endpointslices",
    "endpoints",
    "events.k8s.io/events",
    "events",
    "extensions/daemonsets",
    "extensions/deployments",
    "extensions/ingresses",
    "extensions/networkpolicies",
    "extensions/replicasets",
    "limitranges",
    "metrics.k8s.io/pods",
    "metrics.k8s.io/nodes",
    "namespaces",
    "networking.k8s.io/ingresses",
    "networking.k8s.io/networkpolicies",
    "persistentvolumeclaims",
    "pods",
    "policy/poddisruptionbudgets",
    "replicationcontrollers",
    "resourcequotas",
    "serviceaccounts",
    "services",
]
_AKS_WRITER_DATA_ACTIONS = [
    f"{_AKS}/apps/controllerrevisions/read",
    f"{_AKS}/apps/daemonsets/*",
    f"{_AKS}/apps/deployments/*",
    f"{_AKS}/apps/replicasets/*",
    f"{_AKS}/apps/statefulsets/*",
    f"{_AKS}/autoscaling/horizontalpodautoscalers/*",
    f"{_AKS}/batch/cronjobs/*",
    f"{_AKS}/coordination.k8s.io/leases/read",
    f"{_AKS}/coordination.k8s.io/leases/write",
    f"{_AKS}/coordination.k8s.io/leases/delete",
    f"{_AKS}/discovery.k8s.io/endpointslices/read",
    f"{_AKS}/batch/jobs/*",
    f"{_AKS}/configmaps/*",
    f"{_AKS}/endpoints/*",
    f"{_AKS}/events.k8s.io/events/read",
    f"{_AKS}/events/*",
    f"{_AKS}/extensions/daemonsets/*",
    f"{_AKS}/extensions/deployments/*",
    f"{_AKS}/extensions/ingresses/*",
    f"{_AKS}/extensions/networkpolicies/*",
    f"{_AKS}/extensions/replicasets/*",
    f"{_AKS}/limitranges/read",
    f"{_AKS}/metrics.k8s.io/pods/read",
    f"{_AKS}/metrics.k8s.io/nodes/read",
    f"{_AKS}/namespaces/read",
    f"{_AKS}/networking.k8s.io/ingresses/*",
    f"{_AKS}/networking.k8s.io/networkpolicies/*",
    f"{_AKS}/persistentvolumeclaims/*",
    f"{_AKS}/pods/*",
    f"{_AKS}/policy/poddisruptionbudgets/*",
    f"{_AKS}/replicationcontrollers/*",
    f"{_AKS}/resourcequotas/read",
    f"{_AKS}/secrets/*",
    f"{_AKS}/serviceaccounts/*",
    f"{_AKS}/services/*",
]

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
        "5bd9cd88-fe45-4216-938b-f97437e15450",
        "DocumentDB Account Contributor",
        "Lets you manage DocumentDB accounts, but not access to them.",
        [
            "Microsoft.Authorization/*/read",
            "Microsoft.DocumentDb/databaseAccounts/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
            "Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action",
        ],
        [],
        [],
        [],
    ),
    (
        "fbdf93bf-df7d-467e-a4d2-9458aa1360c8",
        "Cosmos DB Account Reader Role",
        "Can read Azure Cosmos DB account data.",
        [
            "Microsoft.Authorization/*/read",
            "Microsoft.DocumentDB/*/read",
            "Microsoft.DocumentDB/databaseAccounts/readonlykeys/action",
            "Microsoft.Insights/MetricDefinitions/read",
            "Microsoft.Insights/Metrics/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
        ],
        [],
        [],
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
        "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
        "Managed Identity Contributor",
        "Create, Read, Update, and Delete User Assigned Identity",
        [
            "Microsoft.ManagedIdentity/userAssignedIdentities/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/write",
            "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
            "Microsoft.ManagedIdentity/userAssignedIdentities/revokeTokens/action",
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Support/*",
        ],
        [],
        [],
        [],
    ),
    (
        "4a9ae827-6dc8-4573-8ac7-8239d42aa03f",
        "Tag Contributor",
        "Lets you manage tags on entities, without providing access to the entities themselves.",
        [
            "Microsoft.Authorization/*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
            "Microsoft.Resources/subscriptions/resources/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Support/*",
            "Microsoft.Resources/tags/*",
        ],
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
    (
        "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8",
        "Azure Kubernetes Service Cluster Admin Role",
        "List cluster admin credential action.",
        [
            "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
            "Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action",
            "Microsoft.ContainerService/managedClusters/read",
            "Microsoft.ContainerService/managedClusters/runcommand/action",
        ],
        [],
        [],
        [],
    ),
    (
        "7f6c6a51-bcf8-42ba-9220-52d62157d7db",
        "Azure Kubernetes Service RBAC Reader",
        "Allows read-only access to see most objects in a namespace. It does not allow viewing roles or role "
        "bindings. This role does not allow viewing Secrets, since reading the contents of Secrets enables access to "
        "ServiceAccount credentials in the namespace, which would allow API access as any ServiceAccount in the "
        "namespace (a form of privilege escalation). Applying this role at cluster scope will give access across all "
        "namespaces.",
        _AKS_RBAC_ACTIONS,
        [],
        [f"{_AKS}/{path}/read" for path in _AKS_READER_PATHS],
        [],
    ),
    (
        "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb",
        "Azure Kubernetes Service RBAC Writer",
        "Allows read/write access to most objects in a namespace.This role does not allow viewing or modifying roles "
        "or role bindings. However, this role allows accessing Secrets and running Pods as any ServiceAccount in the "
        "namespace, so it can be used to gain the API access levels of any ServiceAccount in the namespace. Applying "
        "this role at cluster scope will give access across all namespaces.",
        _AKS_RBAC_ACTIONS,
        [],
        _AKS_WRITER_DATA_ACTIONS,
        [],
    ),
    (
        "3498e952-d568-435e-9b2c-8d77e338d7f7",
        "Azure Kubernetes Service RBAC Admin",
        "Lets you manage all resources under cluster/namespace, except update or delete resource quotas and "
        "namespaces.",
        [*_AKS_RBAC_ACTIONS, f"{_AKS}/listClusterUserCredential/action"],
        [],
        [f"{_AKS}/*"],
        [
            f"{_AKS}/resourcequotas/write",
            f"{_AKS}/resourcequotas/delete",
            f"{_AKS}/namespaces/write",
            f"{_AKS}/namespaces/delete",
        ],
    ),
    (
        "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
        "Azure Kubernetes Service RBAC Cluster Admin",
        "Lets you manage all resources in the cluster.",
        [*_AKS_RBAC_ACTIONS, f"{_AKS}/listClusterUserCredential/action"],
        [],
        [f"{_AKS}/*"],
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
    return bool(_pattern(glob).fullmatch(action))


def permits(permissions: list[dict[str, Any]], action: str, data_action: bool = False) -> bool:
    """Whether a role's permission blocks allow ``action`` (actions minus notActions)."""
    allow_key, deny_key = ("dataActions", "notDataActions") if data_action else ("actions", "notActions")
    for block in permissions:
        if any(action_matches(g, action) for g in block.get(allow_key) or []) and not any(
            action_matches(g, action) for g in block.get(deny_key) or []
        ):
            return True
    return False
