"""``make bench``: the numbers behind the speed claims, printed (and written to tests/output/benchmark.json).

A sandbox of its own with ARM-like latency and throttling on; module start per SDK; then the batch
module for N workloads: cold, no-op and check mode, with wall time, ARM requests and peak memory.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

import yaml

from tests.integration.sandbox_helpers import PROJECT, TEST_SETTINGS, running

LATENCY_MS = 40  # a typical ARM round trip from inside Azure is 30-100 ms
SIZES = (10, 50)


def module_start(sdk: str) -> float:
    code = (
        "import sys; sys.path.insert(0, '.build/unit-collections')\n"
        "from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import Connection\n"
        "Connection({'auth_source': 'env', 'subscription_id': '0b1f6471-1bf0-4dda-aec3-cb9272f09590', "
        f"'tenant': 't', 'client_id': 'c', 'secret': 's', 'cloud_environment': 'AzureCloud'}}).client('{sdk}')"
    )
    times = []
    for _attempt in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=PROJECT, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    work = PROJECT / ".build" / "bench"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    link = work / "collections" / "ansible_collections" / "workload_identity" / "aks"
    link.parent.mkdir(parents=True)
    link.symlink_to(PROJECT)
    unit = PROJECT / ".build" / "unit-collections" / "ansible_collections" / "workload_identity"
    unit.mkdir(parents=True, exist_ok=True)
    if not (unit / "aks").exists():
        (unit / "aks").symlink_to(PROJECT)
    report: dict[str, Any] = {"latency_ms": LATENCY_MS, "module_start_s": {}, "batch": []}
    for sdk in ("msi", "authorization", "containerservice"):
        report["module_start_s"][sdk] = round(module_start(sdk), 3)
    settings = {**TEST_SETTINGS, "throttling": True, "latency_ms": LATENCY_MS}
    with running(work / "sandbox", settings) as box:
        box.resource_group("rg-bench")
        auth = {
            "auth_source": "env",
            "subscription_id": box.subscription_id,
            "tenant": box.tenant_id,
            "client_id": box.env["AZURE_CLIENT_ID"],
            "secret": box.env["AZURE_CLIENT_SECRET"],
            "resource_manager_endpoint": box.url,
            "authority_host": box.url,
            "ca_bundle": box.ca,
        }
        rg = box.rg_id("rg-bench")
        for n in SIZES:
            cluster = f"aks-bench-{n}"
            workloads = [
                {
                    "name": f"svc-{i:03d}",
                    "namespace": f"team-{i % 5}",
                    "service_account": f"svc-{i:03d}",
                    "roles": [{"role": "Reader", "scope": rg}, {"role": "AcrPull", "scope": rg}],
                }
                for i in range(n)
            ]
            book = work / f"bench-{n}.yml"
            book.write_text(
                yaml.safe_dump(
                    [
                        {
                            "hosts": "localhost",
                            "connection": "local",
                            "gather_facts": False,
                            "tasks": [
                                {
                                    "workload_identity.aks.workload_identities": {
                                        **auth,
                                        "cluster_name": cluster,
                                        "issuer_url": "https://issuer/x/",
                                        "location": "westeurope",
                                        "identity_resource_group": "rg-bench",
                                        "workloads": workloads,
                                        "prune": True,
                                    }
                                }
                            ],
                        }
                    ]
                )
            )
            for run, extra in (("cold", []), ("no-op", []), ("check mode", ["--check"])):
                box.control.reset_stats()
                started = time.perf_counter()
                done = subprocess.run(
                    [
                        "/usr/bin/time",
                        "-f",
                        "MAXRSS=%M",
                        str(PROJECT / ".venv" / "bin" / "ansible-playbook"),
                        "-i",
                        "localhost,",
                        str(book),
                        *extra,
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                    env={
                        "PATH": "/usr/bin:/bin",
                        "HOME": str(work),
                        "ANSIBLE_COLLECTIONS_PATH": str(work / "collections"),
                        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
                    },
                )
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(done.stdout[-3000:] + done.stderr[-2000:])
                rss = int(done.stderr.rsplit("MAXRSS=", 1)[1].split()[0]) // 1024
                arm = box.control.stats()["totals"].get("arm", 0)
                report["batch"].append(
                    {
                        "workloads": n,
                        "run": run,
                        "seconds": round(elapsed, 1),
                        "arm_requests": arm,
                        "per_workload": round(arm / n, 2),
                        "peak_rss_mb_ansible_playbook": rss,
                    }
                )
    print(
        "\nmodule start (imports + credential + client, median of 5): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in report["module_start_s"].items())
    )
    print(f"\nworkload_identities against the sandbox ({LATENCY_MS} ms per ARM request, throttling on):")
    print(f"{'workloads':>9} {'run':<11} {'seconds':>8} {'ARM requests':>13} {'per workload':>13} {'peak RSS MB':>12}")
    for row in report["batch"]:
        print(
            f"{row['workloads']:>9} {row['run']:<11} {row['seconds']:>8} {row['arm_requests']:>13} "
            f"{row['per_workload']:>13} {row['peak_rss_mb_ansible_playbook']:>12}"
        )
    output = PROJECT / "tests" / "output"
    output.mkdir(exist_ok=True)
    (output / "benchmark.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
