"""``make bench`` (and ``make bench-peer``): the whole rollout at scale, measured against the sandbox.

One sandbox, ARM's throttling on and a realistic latency on every ARM, Entra and Graph request. For each size N
a cluster of its own (its own kube-apiserver) runs N applications; ``playbooks/site.yml`` rolls workload identity
out on it: check mode first (the plan of a cold estate), cold, then the no-op ``--repeat`` times, alternated with
a trivial play on the same inventory (Ansible's own start: the baseline) and, with ``--peer``, the peer's no-op
(azure.azcollection + kubernetes.core, tests/benchmark/peer), then one changed workload, then
``playbooks/teardown.yml``. Each run's wall time, CPU, memory, tasks, every request (read from the servers' own
logs), its request floor and the machine's other load go to tests/output/benchmark.json, .md and .png, with the
time ARM's buckets allow for those requests; repeated runs are judged by their medians, and a run measured while
something else loaded the machine is marked untrusted. Numbers are printed, never asserted: tests assert counts
(``make test``); time is measured here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.benchmark.estate import Estate
from tests.benchmark.measure import (
    LogTail,
    MachineLoad,
    count_requests,
    recap,
    request_floor,
    run_measured,
    tasks_per_play,
    throttle_bound,
)
from tests.benchmark.report import render
from tests.integration.sandbox_helpers import PROJECT, TEST_SETTINGS, Sandbox, running
from tests.integration.scale_estate import ScaleEstate
from tests.sandbox.demo import ansible_env

LATENCY_MS = 40  # a typical ARM round trip from inside Azure is 30-100 ms
SIZES = (10, 50, 200, 1000)
PEER_SIZES = (10, 50)
REPEAT = 3
# A run during which other processes kept more than this many cores busy (on average) is not trusted.
UNTRUSTED_LOAD = 0.25
PEER_FOLDER = PROJECT / "tests" / "benchmark" / "peer"
PEER_VENV = PROJECT / ".build" / "peer-venv"
TRIVIAL = PROJECT / "tests" / "benchmark" / "trivial.yml"
OUTPUT = PROJECT / "tests" / "output"


def module_start(sdk: str) -> float:
    """A module's fixed cost: imports, credential and client for one SDK, in a fresh interpreter (median of 5)."""
    code = (
        "import sys; sys.path.insert(0, '.build/unit-collections')\n"
        "from ansible_collections.workload_identity.aks.plugins.module_utils._azure_client import Connection\n"
        "Connection({'auth_source': 'env', 'subscription_id': '0b1f6471-1bf0-4dda-aec3-cb9272f09590', "
        f"'tenant': 't', 'client_id': 'c', 'secret': 's', 'cloud_environment': 'AzureCloud'}}).client('{sdk}')"
    )
    unit = PROJECT / ".build" / "unit-collections" / "ansible_collections" / "workload_identity"
    unit.mkdir(parents=True, exist_ok=True)
    if not (unit / "aks").exists():
        (unit / "aks").symlink_to(PROJECT)
    times = []
    for _attempt in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=PROJECT, check=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def sandbox_reads(box: Sandbox) -> dict[str, float]:
    """The reads a rollout makes of a 500-identity estate (2000 assignments), median ms of 15, no added latency."""
    estate = ScaleEstate(box, box.resource_group("rg-scale"))
    estate.build()
    medians = {}
    for what, _operation, path, check in estate.reads():
        times = []
        for _attempt in range(15):
            started = time.perf_counter()
            estate.read(path, check)
            times.append((time.perf_counter() - started) * 1000)
        medians[what] = round(statistics.median(times), 2)
    return medians


class Bench:
    def __init__(self, box: Sandbox, work: Path) -> None:
        self.box, self.work = box, work
        self.azure_log = LogTail(box.state_dir / "requests.jsonl")
        self.limits = box.control.call("GET", "/_sandbox/config")["buckets"]
        self.rows: list[dict[str, Any]] = []

    def measure(
        self, tool: str, run: str, estate: Estate, command: list[str], env: dict[str, str], repeat: int = 0
    ) -> dict[str, Any]:
        # Full buckets at the start of every run (the bound below assumes so).
        self.box.control.configure({"buckets": self.limits})
        kube_log = LogTail(estate.audit_log)
        self.azure_log.mark()
        kube_log.mark()
        load_average = os.getloadavg()[0]
        load = MachineLoad([os.getpid(), self.box.server_pid])
        measured = run_measured(command, env, PROJECT)
        other = load.other_cores(measured.cpu_seconds)
        (self.work / f"{tool}-{estate.size}-{run.replace(' ', '-')}-{repeat}.log").write_text(measured.output)
        if measured.returncode != 0:
            raise SystemExit(f"{tool} {run} at N={estate.size} failed:\n{measured.output[-6000:]}")
        time.sleep(0.5)  # the API server writes its audit batch asynchronously
        azure_lines, kube_lines = self.azure_log.lines(), kube_log.lines()
        counted = count_requests(azure_lines, kube_lines)
        plays = tasks_per_play(measured.output)
        row = {
            "tool": tool,
            "workloads": estate.size,
            "run": run,
            "repeat": repeat,
            "seconds": measured.seconds,
            "throttle_bound_s": throttle_bound(counted.buckets, self.limits),
            "request_floor_s": request_floor(azure_lines, kube_lines),
            "cpu_seconds": measured.cpu_seconds,
            "peak_rss_mb_largest": measured.peak_rss_mb_largest,
            "peak_rss_mb_tree": measured.peak_rss_mb_tree,
            "load_average": round(load_average, 2),
            "other_load_cores": other,
            "trusted": other <= UNTRUSTED_LOAD,
            "arm": counted.arm,
            "arm_answered": counted.arm - counted.arm_throttled,  # what the run needed; the rest were 429s retried
            "entra": counted.entra,
            "graph": counted.graph,
            "throttled": counted.throttled,
            "kube": counted.kube,
            "writes": counted.writes,
            "tasks": sum(plays.values()),
            "tasks_per_play": plays,
            "changed": sum(host.get("changed", 0) for host in recap(measured.output).values()),
            "arm_by_operation": counted.by_operation,
            "kube_by_verb": counted.kube_by_verb,
        }
        self.rows.append(row)
        print(
            f"  {tool:<7} N={estate.size:<5} {run:<11} {row['seconds']:>7.1f} s (floor {row['request_floor_s']:>5.1f},"
            f" bound {row['throttle_bound_s']:>5.1f})  cpu {row['cpu_seconds']:>6.1f} s  ARM {row['arm']:>5}"
            f"  Entra {row['entra']:>3}  Graph {row['graph']:>3}  kube {row['kube']:>5}  writes {row['writes']:>5}"
            f"  tasks {row['tasks']:>3}  changed {row['changed']:>3}"
            f"  rss {row['peak_rss_mb_largest']:>5.0f}/{row['peak_rss_mb_tree']:>5.0f} MB"
            f"  load {load_average:.2f}, other {other:.2f} cores{'' if row['trusted'] else '  UNTRUSTED'}",
            flush=True,
        )
        return row

    def ours(self, estate: Estate, run: str, repeat: int = 0) -> None:
        env = ansible_env(self.box.env, self.box.state_dir)
        binary = str(PROJECT / ".venv" / "bin" / "ansible-playbook")
        if run == "one change":
            estate.change_one()
        hosts = estate.write_inventory(self.work / f"ours-{estate.size}")
        if run == "trivial play":
            playbook = TRIVIAL
        else:
            playbook = PROJECT / "playbooks" / ("teardown.yml" if run == "teardown" else "site.yml")
        extra = ["--check"] if run == "check mode" else []
        tool = "ansible" if run == "trivial play" else "ours"
        self.measure(tool, run, estate, [binary, "-i", str(hosts), str(playbook), *extra], env, repeat)

    def sequence(self, size: int, data_group: str, repeat: int, peer: bool) -> None:
        """Check mode and cold once each; then the no-op ``repeat`` times, alternated with the trivial play (and the
        peer's no-op): each pair measured minutes, not a whole sequence, apart; then one change, then teardown."""
        estate = Estate(self.box, f"aks-bench-{size}", size, data_group)
        self.ours(estate, "check mode")
        self.ours(estate, "cold")
        theirs = Estate(self.box, f"aks-peer-{size}", size, data_group, issuer_on=True) if peer else None
        if theirs is not None:
            self.peer(theirs, "cold")
        for attempt in range(repeat):
            self.ours(estate, "no-op", attempt)
            self.ours(estate, "trivial play", attempt)
            if theirs is not None:
                self.peer(theirs, "no-op", attempt)
        self.ours(estate, "one change")
        self.ours(estate, "teardown")

    def peer(self, estate: Estate, run: str, repeat: int = 0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "K8S_AUTH_", "ANSIBLE_"))}
        env.update(
            {
                "AZURE_CLIENT_ID": self.box.env["AZURE_CLIENT_ID"],
                "AZURE_SECRET": self.box.env["AZURE_CLIENT_SECRET"],
                "AZURE_TENANT": self.box.tenant_id,
                "AZURE_SUBSCRIPTION_ID": self.box.subscription_id,
                # azure.azcollection ignores AZURE_RESOURCE_MANAGER_ENDPOINT; a cloud is a metadata URL to it.
                "AZURE_CLOUD_ENVIRONMENT": f"{self.box.url}/metadata/endpoints?api-version=2022-09-01",
                "AZURE_DISABLE_INSTANCE_DISCOVERY": "true",
                "REQUESTS_CA_BUNDLE": self.box.ca,
                "PYTHONPATH": str(PEER_FOLDER),  # sitecustomize.py: azure.azcollection 3.12's custom-cloud bug
                "KUBECONFIG": str(self.box.state_dir / "kubeconfig"),
                "ANSIBLE_PYTHON_INTERPRETER": str(PEER_VENV / "bin" / "python"),
                "ANSIBLE_HOME": str(self.work / "peer-home"),
                "ANSIBLE_LOCAL_TEMP": str(self.work / "peer-home" / "tmp"),
                "ANSIBLE_STDOUT_CALLBACK": "default",
                "ANSIBLE_FORKS": "4",
                "PATH": f"{PEER_VENV / 'bin'}:{os.environ['PATH']}",
            }
        )
        hosts = estate.write_inventory(self.work / f"peer-{estate.size}")
        command = [
            str(PEER_VENV / "bin" / "ansible-playbook"),
            "-i",
            str(hosts),
            str(PEER_FOLDER / "peer-site.yml"),
            "-e",
            f"peer_issuer_url={estate.cluster['issuer_url']}",
        ]
        self.measure("peer", run, estate, command, env, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmark", description=(__doc__ or "").split("\n\n", maxsplit=1)[0]
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="workloads per cluster, comma-separated")
    parser.add_argument("--peer", action="store_true", help=f"also the peer, at the sizes of {PEER_SIZES} given")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="no-op runs per size (alternated), for medians")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.peer and not (PEER_VENV / "bin" / "ansible-playbook").exists():
        raise SystemExit(f"the peer's venv is missing: make bench-peer makes {PEER_VENV}")
    work = PROJECT / ".build" / "bench"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    report: dict[str, Any] = {"latency_ms": LATENCY_MS, "sizes": sizes, "repeat": args.repeat, "cores": os.cpu_count()}
    print("==> module start (imports + credential + client, fresh interpreter, median of 5)", flush=True)
    report["module_start_s"] = {sdk: module_start(sdk) for sdk in ("msi", "authorization", "containerservice")}
    print("   ", ", ".join(f"{k} {v:.2f} s" for k, v in report["module_start_s"].items()))
    with running(work / "sandbox", {**TEST_SETTINGS, "kube_clusters": True}) as box:
        print("==> the sandbox's reads of a 500-identity estate (median ms of 15, no added latency)", flush=True)
        report["sandbox_reads_ms"] = sandbox_reads(box)
        print("   ", ", ".join(f"{k} {v:.1f}" for k, v in report["sandbox_reads_ms"].items()))
        box.resource_group("rg-data-bench")
        settings = {"throttling": True, "latency_ms": LATENCY_MS, "lro_seconds": 2.0}
        box.control.configure(settings)
        bench = Bench(box, work)
        report["buckets"] = bench.limits
        print(f"==> the rollout ({LATENCY_MS} ms per ARM/Entra/Graph request, ARM throttling on)", flush=True)
        for size in sizes:
            bench.sequence(size, "rg-data-bench", max(1, args.repeat), args.peer and size in PEER_SIZES)
        report["runs"] = bench.rows
    OUTPUT.mkdir(exist_ok=True)
    name = "benchmark-peer" if args.peer else "benchmark"
    print(render(report, OUTPUT / f"{name}.json", OUTPUT / f"{name}.md", OUTPUT / f"{name}.png"))


if __name__ == "__main__":
    main()
