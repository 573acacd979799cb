"""kube_access: what kubernetes.core's helm tasks are given on a cluster reached with the Azure credential alone."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from ansible.errors import AnsibleError
from ansible_collections.workload_identity.aks.plugins.lookup.kube_access import helm_access
from ansible_collections.workload_identity.aks.plugins.module_utils._aks_access import AksAccess, ClusterRef

from tests.unit.plugins.module_utils.test_aks_access import (
    CA,
    EXEC_USER,
    SUB,
    FakeConnection,
    FakeCredential,
    kubeconfig,
)


def loaded(user: dict[str, str | dict[str, object]]) -> AksAccess:
    connection = FakeConnection(kubeconfig(user), FakeCredential([1000.0]))
    return AksAccess(connection, ClusterRef("rg/aks-x", SUB)).load()  # type: ignore[arg-type]


def test_an_entra_cluster_gives_the_server_its_token_and_the_ca_in_a_file_under_ansibles_run_temp(
    tmp_path: Path,
) -> None:
    access = loaded(EXEC_USER)
    given = helm_access(access, access.token(), str(tmp_path))
    assert given["host"] == "https://aks-x.hcp.westeurope.azmk8s.io:443"
    assert given["api_key"] == "token-1"
    assert Path(given["ca_cert"]).parent == tmp_path and Path(given["ca_cert"]).read_bytes() == CA
    # The token itself is never written: only the public CA is in the folder.
    assert [p.read_bytes() for p in tmp_path.iterdir()] == [CA]


def test_a_credential_with_a_certificate_and_no_token_is_refused_saying_what_to_use(tmp_path: Path) -> None:
    pem = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n").decode()
    access = loaded({"client-certificate-data": pem, "client-key-data": pem})
    with pytest.raises(AnsibleError, match="client certificate and no token.*workload_identity_kube_context"):
        helm_access(access, access.token(), str(tmp_path))
    assert not os.listdir(tmp_path)
