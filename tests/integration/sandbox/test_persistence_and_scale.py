"""State survives down/up and kill -9; the sandbox answers the benchmark's estate whole, one request per read."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.integration.sandbox_helpers import Sandbox, run_cli, start
from tests.integration.scale_estate import ScaleEstate


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
        # Killed mid-stream, once some writes are acknowledged (however fast this machine is), the writer still going.
        deadline = time.monotonic() + 120
        while len(acknowledged) <= 10:
            assert thread.is_alive() and time.monotonic() < deadline, "the writer got no 10 writes acknowledged"
            time.sleep(0.05)
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
    """Counted, never timed (``make bench`` times the same reads): every write answered once, and each read a
    rollout makes of the estate one request with the whole, right answer (no paging where ARM does not page)."""
    sandbox.control.configure({"fic_write_seconds": 0})
    estate = ScaleEstate(sandbox, sandbox.resource_group("rg-scale"))
    sandbox.control.reset_stats()
    estate.build()
    operations = sandbox.control.stats()["operations"]
    assert operations["userAssignedIdentities.put"]["by_status"] == {"201": 500}
    assert operations["federatedIdentityCredentials.put"]["by_status"] == {"201": 500}
    assert operations["roleAssignments.put"]["by_status"] == {"201": 2000}
    for _what, operation, path, check in estate.reads():
        sandbox.control.reset_stats()
        estate.read(path, check)
        assert sandbox.control.stats()["operations"][operation]["by_status"] == {"200": 1}, path
