# Copyright: workload_identity.aks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to workload_identity.aks (not a public API): how the Kubernetes modules reach a cluster.

The Kubernetes counterpart of ``_azure_client`` + ``_azure_errors``: one auth argument spec (with
the ``K8S_AUTH_*`` names AWX injects as fallbacks, documented in the ``kube`` doc fragment), one
client whose calls are retried under the shared policy (``_retry``) and whose failures leave as one
:class:`KubeApiError` naming the object, and the module base that builds it.

A named context is a whole answer: a host and token from the environment (AWX's bearer-token
credential, which is one cluster) are never mixed into it, so one cluster's token is never sent to
another cluster's API server.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import env_fallback

from ._errors import AzureApiError, Failure, KubeApiError, ValidationError, error_result
from ._module import CollectionModule
from ._retry import DEFAULT_BUDGET, WEBHOOK_FAILED, RetryPolicy, call

KUBE_AUTH_ARGSPEC: dict[str, Any] = {
    "kubeconfig": {"type": "path", "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG", "KUBECONFIG"])},
    "context": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
    "host": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_HOST"])},
    "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_API_KEY"])},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"], "fallback": (env_fallback, ["K8S_AUTH_SSL_CA_CERT"])},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"], "fallback": (env_fallback, ["K8S_AUTH_VERIFY_SSL"])},
    "retry_budget": {"type": "float", "fallback": (env_fallback, ["WORKLOAD_IDENTITY_RETRY_BUDGET"])},
    # azure: the API server, its CA and an Entra token from the Azure credential alone (see _aks_access).
    "kube_auth": {"type": "str", "default": "kubeconfig", "choices": ["kubeconfig", "azure"]},
    "aks_cluster": {"type": "str"},
    "aks_credential": {"type": "str", "default": "user", "choices": ["user", "admin"]},
}
DEFAULT_KUBECONFIG = "~/.kube/config"


class KubeConnection:
    """Which API server and which credentials, from the auth options, decided before any request."""

    def __init__(
        self,
        params: dict[str, Any],
        environ: dict[str, str] | None = None,
        access_factory: Callable[[str, str, RetryPolicy | None], Any] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        # With kube_auth azure: (cluster, credential kind, policy) -> the loaded access (_aks_access.AksAccess, which
        # sits above both sides: this side never imports Azure's).
        self.access_factory = access_factory
        self.access: Any = None
        self.aks_cluster: str | None = params.get("aks_cluster")
        self.aks_credential: str = params.get("aks_credential") or "user"
        self.context: str | None = params.get("context")
        self.kubeconfig: str | None = params.get("kubeconfig")
        self.host: str | None = params.get("host")
        self.api_key: str | None = params.get("api_key")
        self.ca_cert: str | None = params.get("ca_cert")
        self.validate_certs: bool | None = params.get("validate_certs")
        self.warnings: list[str] = []
        self.ignored_host = False
        if params.get("kube_auth") == "azure":
            # The cluster's own credential from ARM, whole: no kubeconfig, context or K8S_AUTH_* is mixed in.
            self.source = "azure"
            if not self.aks_cluster:
                raise ValidationError(
                    ["kube_auth azure needs aks_cluster (the AKS cluster's resource id, or <resource group>/<name>)"]
                )
            ignored = [n for n, v in (("host", self.host), ("api_key", self.api_key), ("context", self.context)) if v]
            if ignored:
                # AWX's bearer-token credential (K8S_AUTH_*) or a kubeconfig context beside kube_auth azure: say so,
                # as a named context does, rather than leave the operator guessing which one signed in.
                self.warnings.append(
                    f"kube_auth azure signs in to {self.aks_cluster} with an Entra token from the Azure credential; "
                    f"{' and '.join(ignored)} (or K8S_AUTH_HOST/K8S_AUTH_API_KEY/K8S_AUTH_CONTEXT) ignored"
                )
            self.host = self.api_key = self.ca_cert = self.context = None
        elif self.context:
            self.source = "context"
            ignored = [n for n, v in (("host", self.host), ("api_key", self.api_key)) if v]
            self.ignored_host = bool(ignored)
            if ignored:
                # Whether set here or injected as K8S_AUTH_*: the named context wins, whole (its own CA too).
                self.warnings.append(
                    f"context {self.context} is used as the kubeconfig defines it; {' and '.join(ignored)} "
                    "(or K8S_AUTH_HOST/K8S_AUTH_API_KEY) ignored"
                )
            self.host = self.api_key = self.ca_cert = None
        elif self.host:
            self.source = "host"
        elif self.kubeconfig or os.path.exists(os.path.expanduser(DEFAULT_KUBECONFIG)):
            self.source = "kubeconfig"
        elif env.get("KUBERNETES_SERVICE_HOST"):
            self.source = "in-cluster"
        else:
            self.source = "none"

    def kubeconfig_problem(self, error: BaseException) -> str:
        """Why the kubeconfig could not be used, and which inventory variable to change."""
        where = self.kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
        if self.context:
            message = f"context {self.context} (workload_identity_kube_context) cannot be loaded from {where}: {error}"
            if self.ignored_host:
                # AWX's bearer-token credential beside an inventory that names contexts: say which one to drop.
                message += (
                    "; K8S_AUTH_HOST/K8S_AUTH_API_KEY (a bearer-token credential) are set but never mixed with a "
                    "named context: to use them, unset workload_identity_kube_context for this cluster (and "
                    "K8S_AUTH_CONTEXT); to use contexts, give a kubeconfig (workload_identity_kubeconfig or "
                    "K8S_AUTH_KUBECONFIG) that has it"
                )
            return message
        return f"the kubeconfig {where} cannot be loaded: {error}"

    def client(self, policy: RetryPolicy) -> KubeClient:
        """A KubeClient for this cluster (with kube_auth azure, its refusals say which role to assign)."""
        api = self.api_client(policy)
        return KubeClient(api, policy, explain=self.access.explain if self.access is not None else None)

    def api_client(self, policy: RetryPolicy | None = None) -> Any:
        """A kubernetes ApiClient with its own retries off: ``_retry`` decides, once."""
        from kubernetes import client, config  # imported here: only the Kubernetes modules pay for it

        configuration = client.Configuration()
        if self.source == "azure":
            if self.access_factory is None:
                raise KubeApiError(
                    "kube_auth azure needs the Azure options, which this module does not take",
                    code="NoCredentials",
                    operation="connect",
                )
            self.access = self.access_factory(str(self.aks_cluster), self.aks_credential, policy)
            self.access.configure(configuration)
        elif self.source in ("context", "kubeconfig"):
            try:
                config.load_kube_config(
                    config_file=self.kubeconfig, context=self.context, client_configuration=configuration
                )
            except (config.ConfigException, OSError) as error:
                raise KubeApiError(self.kubeconfig_problem(error), code="NoCredentials", operation="connect") from None
        elif self.source == "host":
            configuration.host = str(self.host)
            if self.api_key:
                configuration.api_key = {"authorization": f"Bearer {self.api_key}"}
            configuration.ssl_ca_cert = self.ca_cert
        elif self.source == "in-cluster":
            config.load_incluster_config(client_configuration=configuration)
        else:
            raise KubeApiError(
                "no kubeconfig, context, host or in-cluster service account (see the kube options)",
                code="NoCredentials",
                operation="connect",
            )
        if self.validate_certs is not None:
            configuration.verify_ssl = self.validate_certs
        configuration.retries = False
        return client.ApiClient(configuration)


_HINTS = {
    401: "the API server did not accept the credentials (an expired or revoked token?)",
    403: "the credentials lack the Kubernetes RBAC permission for this",
}


# Every request is bounded: a stopped API server fails the call (retried under the time budget), never hangs it.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60


def translate(exc: BaseException, operation: str) -> KubeApiError | None:
    """The Kubernetes client's exception as a KubeApiError naming the object; None for anything else (a bug)."""
    if isinstance(exc, KubeApiError):
        return exc
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    if isinstance(exc, ApiException):
        return _api_error(exc, operation)
    # urllib3's connect and read timeouts (a stopped or unreachable API server), also as the reason of a MaxRetryError.
    if isinstance(exc, Urllib3Timeout) or isinstance(getattr(exc, "reason", None), Urllib3Timeout):
        return KubeApiError(
            f"the API server did not answer within {CONNECT_TIMEOUT} s to connect or {READ_TIMEOUT} s to reply ({exc})",
            code="ConnectionError",
            operation=operation,
        )
    if isinstance(exc, HTTPError):
        return KubeApiError(f"could not reach the API server: {exc}", code="ConnectionError", operation=operation)
    return None


def _api_error(exc: Any, operation: str) -> KubeApiError:
    """An API server's answer: its Status message (with what it means here), reason, audit id and Retry-After."""
    try:
        detail = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        detail = {}
    detail = detail if isinstance(detail, dict) else {}
    status = int(exc.status or 0)
    message = str(detail.get("message") or exc.reason or "")
    webhook_failed = "failed calling webhook" in message
    if "admission webhook" in message:
        message = f"refused by an admission webhook: {message}"
    elif status in _HINTS:
        message = f"{_HINTS[status]}: {message}" if message else _HINTS[status]
    headers = exc.headers or {}
    retry_after = headers.get("Retry-After")
    audit_id = headers.get("Audit-Id")
    return KubeApiError(
        message,
        status=status,
        # A webhook that cannot be called answers the same until it is fixed: not a transient 500.
        code=WEBHOOK_FAILED if webhook_failed else str(detail.get("reason") or exc.reason or "") or None,
        request_id=str(audit_id) if audit_id else None,
        operation=operation,
        retry_after=float(retry_after) if retry_after and str(retry_after).isdigit() else None,
    )


class KubeClient:
    """The few REST calls the Kubernetes engine makes: retried, translated, 404 on a read becomes None."""

    def __init__(
        self,
        api_client: Any,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        explain: Callable[[KubeApiError, str, str], None] | None = None,
    ) -> None:
        self.api = api_client
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.requests = 0
        self.explain = explain

    def _send(self, method: str, path: str, body: Any, query: list[tuple[str, str]]) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if method == "PATCH":
            headers["Content-Type"] = "application/merge-patch+json"
        elif body is not None:
            headers["Content-Type"] = "application/json"
        self.requests += 1
        if hasattr(self.api, "param_serialize"):  # kubernetes >= 35 (the newer generator)
            request = self.api.param_serialize(
                method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
            )
            response = self.api.call_api(*request, _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            status, raw = int(response.status), response.read()
            if status >= 400:
                # Set after: ApiException takes no body argument before kubernetes 35 (this code path is 35's, but a
                # client built by the newer generator may meet an older exceptions module).
                error = ApiException(status=status, reason=response.reason)
                error.body = raw
                error.headers = getattr(response, "headers", None)  # Retry-After, Audit-Id
                raise error
        else:
            raw = self.api.call_api(
                path,
                method,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            ).data
        return json.loads(raw) if raw else None

    def _call(self, method: str, path: str, operation: str, body: Any = None, query: Any = None) -> Any:
        try:
            return call(
                operation, lambda: self._send(method, path, body, query or []), translate, self.policy, self.sleep
            )
        except KubeApiError as exc:
            if self.explain is not None:
                self.explain(exc, method, path)
            raise

    def get(self, path: str, operation: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("GET", path, operation))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, path: str, operation: str, selector: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The items (``limit``: at most that many, the first page only)."""
        query = [("labelSelector", selector)] if selector else []
        query += [("limit", str(limit))] if limit else []
        return list(self._call("GET", path, operation, query=query).get("items") or [])

    def create(self, path: str, body: dict[str, Any], operation: str) -> None:
        self._call("POST", path, operation, body=body)

    def dry_run_create(self, path: str, body: dict[str, Any], operation: str) -> dict[str, Any]:
        """The object as admission (mutating webhooks included) would store it; a server-side dry run stores nothing."""
        return dict(self._call("POST", path, operation, body=body, query=[("dryRun", "All")]) or {})

    def token(self, namespace: str, name: str, audience: str, seconds: int) -> str:
        """A ServiceAccount token (TokenRequest): signed by the API server, stored nowhere, kept by the caller only."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": [audience], "expirationSeconds": seconds},
        }
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
        answer = self._call("POST", path, f"request a token for {namespace}/{name}", body=request) or {}
        return str((answer.get("status") or {}).get("token") or "")

    def patch(self, path: str, body: dict[str, Any], operation: str) -> None:
        self._call("PATCH", path, operation, body=body)

    def delete(self, path: str, operation: str) -> None:
        try:
            self._call("DELETE", path, operation)
        except KubeApiError as exc:
            if exc.status != 404:
                raise


class KubeModule(CollectionModule):
    """The collection's module base plus the shared Kubernetes auth options and a client factory."""

    def __init__(
        self,
        argument_spec: dict[str, Any],
        access_factory: Callable[[dict[str, Any]], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(argument_spec={**argument_spec, **KUBE_AUTH_ARGSPEC}, **kwargs)
        try:
            factory = (
                access_factory(self.params) if access_factory and self.params.get("kube_auth") == "azure" else None
            )
            self.connection = KubeConnection(self.params, access_factory=factory)
        except ValidationError as error:
            self.fail_error(error)
        self.retry_policy = RetryPolicy(budget=self.params.get("retry_budget") or DEFAULT_BUDGET)
        for warning in self.connection.warnings:
            self.warn(warning)

    def client(self, where: str) -> KubeClient:
        """``where`` names the cluster in a failure (a kubeconfig that does not load, say)."""
        try:
            return open_client(self.connection, self.retry_policy, where)
        except Failure as failure:
            self.fail_json(**failure.result)
            raise AssertionError("fail_json returned") from None  # pragma: no cover (it exits)


def open_client(connection: KubeConnection, policy: RetryPolicy, where: str) -> KubeClient:
    """The connection's client, or a :class:`Failure` worded for the module (``where`` names the cluster)."""
    try:
        return connection.client(policy)
    except (KubeApiError, AzureApiError, ValidationError) as exc:
        raise Failure(error_result(exc, where)) from None
    except Exception as exc:  # kubeconfig problems surface as the client's own exceptions
        if type(exc).__module__.startswith("kubernetes.config"):
            raise Failure({"msg": f"{where}: cannot load the Kubernetes configuration: {exc}"}) from None
        raise
