"""State survives down/up and kill -9; the sandbox stays fast at the sizes the benchmark uses."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.sandbox_helpers import Sandbox, run_cli, start


def test_down_up_keeps_everything_and_reset_wipes(tmp_path: Path) -> None:
    box = start(tmp_path)
    try:
        box.resource_group("rg-keep")
        identity = box.msi().user_assigned_identities.create_or_update("rg-keep", "kept", {"location": "westeurope"})
        cluster = box.control.seed_cluster("rg-keep", "aks-keep", oidc_issuer_enabled=True)
        assert run_cli(tmp_path, "down").returncode == 0
        assert run_cli(tmp_path, "status").returncode == 3
        again = start(tmp_path)
        assert again.url == box.url and again.env["AZURE_CLIENT_SECRET"] == box.env["AZURE_CLIENT_SECRET"]
        assert again.msi().user_assigned_identities.get("rg-keep", "kept").client_id == identity.client_id
        doc = requests.get(cluster["issuer_url"] + ".well-known/openid-configuration", verify=again.ca, timeout=10)
        assert doc.status_code == 200
        assert run_cli(tmp_path, "reset").returncode == 0
        assert list(again.msi().user_assigned_identities.list_by_subscription()) == []
    finally:
        run_cli(tmp_path, "down")


def test_kill_during_writes_leaves_a_consistent_state(tmp_path: Path) -> None:
    box = start(tmp_path)
    try:
        box.resource_group("rg-crash")
        token = box.token()
        acknowledged: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            session = requests.Session()
            index = 0
            while not stop.is_set():
                name = f"crash-{index:05d}"
                try:
                    response = session.put(
                        f"{box.url}{box.rg_id('rg-crash')}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
                        f"{name}?api-version=2024-11-30",
                        json={"location": "westeurope"},
                        headers={"Authorization": f"Bearer {token}"},
                        verify=box.ca,
                        timeout=5,
                    )
                except requests.exceptions.RequestException:
                    return
                if response.status_code == 201:
                    acknowledged.append(name)
                index += 1

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(1.0)
        os.kill(int((tmp_path / "sandbox.pid").read_text()), signal.SIGKILL)
        stop.set()
        thread.join(10)
        assert len(acknowledged) > 10
        with sqlite3.connect(tmp_path / "state.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        again = start(tmp_path)
        names = {i.name for i in again.msi().user_assigned_identities.list_by_resource_group("rg-crash")}
        assert set(acknowledged) <= names
    finally:
        run_cli(tmp_path, "down")


@pytest.mark.slow
def test_scale_500_identities_500_fics_2000_assignments(sandbox: Sandbox) -> None:
    sandbox.control.configure({"fic_write_seconds": 0})
    rg = sandbox.resource_group("rg-scale")
    token = sandbox.token()
    headers = {"Authorization": f"Bearer {token}"}
    base = sandbox.url + rg
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.verify = sandbox.ca
            local.session.headers.update(headers)
        return local.session  # type: ignore[no-any-return]

    def make(index: int) -> str:
        ident = f"{base}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-{index:03d}"
        created = session().put(ident + "?api-version=2024-11-30", json={"location": "westeurope"}).json()
        fic = session().put(
            f"{ident}/federatedIdentityCredentials/aks?api-version=2024-11-30",
            json={
                "properties": {
                    "issuer": "https://issuer.example/",
                    "subject": f"system:serviceaccount:ns:sa{index}",
                    "audiences": ["api://AzureADTokenExchange"],
                }
            },
        )
        assert fic.status_code == 201
        for role in (
            "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            "7f951dda-4ed3-4680-a7ca-43fe172d538d",
            "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
            "4633458b-17de-408a-b874-0445c86b69e6",
        ):
            ra = session().put(
                f"{base}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}?api-version=2022-04-01",
                json={
                    "properties": {
                        "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}",
                        "principalId": created["properties"]["principalId"],
                        "principalType": "ServicePrincipal",
                    }
                },
            )
            assert ra.status_code == 201, ra.text
        return str(created["properties"]["principalId"])

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        principals = list(pool.map(make, range(500)))
    build_seconds = time.monotonic() - started

    def timed(path: str, count: Callable[[dict[str, Any]], int], expected: int) -> float:
        """The median time of 15 answers (printed, never asserted: time is make bench's), each checked for content."""
        times = []
        for _attempt in range(15):
            begin = time.perf_counter()
            response = session().get(sandbox.url + path)
            times.append((time.perf_counter() - begin) * 1000)
            assert response.status_code == 200, response.text
            assert count(response.json()) == expected, path
        return statistics.median(times)

    def items(body: dict[str, Any]) -> int:
        return len(body["value"])

    ident = f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-250"
    measured = {
        "get identity": timed(f"{ident}?api-version=2024-11-30", lambda body: int(body["name"] == "app-250"), 1),
        "list identities (page of 100)": timed(
            f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30", items, 100
        ),
        "list FICs of an identity": timed(f"{ident}/federatedIdentityCredentials?api-version=2024-11-30", items, 1),
        # Not paged at a scope: all in one answer, as ARM does: the 2000 made here, and the automation
        # principal's one at the subscription (atScope() includes the scopes above).
        "list assignments atScope() at the RG": timed(
            f"{rg}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()",
            items,
            2001,
        ),
        "list assignments of one principal": timed(
            f"/subscriptions/{sandbox.subscription_id}/providers/Microsoft.Authorization/roleAssignments"
            f"?api-version=2022-04-01&$filter=principalId eq '{principals[10]}'",
            items,
            4,
        ),
        "get role definition by name": timed(
            f"{rg}/providers/Microsoft.Authorization/roleDefinitions"
            "?api-version=2022-04-01&$filter=roleName eq 'AcrPull'",
            items,
            1,
        ),
    }
    report = {
        "build_seconds_3000_writes": round(build_seconds, 1),
        "median_ms": {k: round(v, 2) for k, v in measured.items()},
    }
    print("\nsandbox scale:", json.dumps(report, indent=2))
    output = Path(__file__).resolve().parents[2] / "output"
    output.mkdir(exist_ok=True)
    (output / "sandbox-scale.json").write_text(json.dumps(report, indent=2))
