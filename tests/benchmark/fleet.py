"""``make bench-fleet``: a fleet in one run, and the same run sliced as AWX slices a job, measured against the sandbox.

C clusters (default 24, each its own kube-apiserver) in two subscriptions, W workloads each (default 40): pairs of
clusters in one subscription (blue-green, two regions) share S of their identities, named alike on both; the rest are
each cluster's own. ``playbooks/site.yml`` rolls them out with the forks an operator would use: cold, no-op, one
changed workload, then ``playbooks/teardown.yml``; then the same four runs sliced in 2 and in 4, each slice an
``ansible-playbook`` of its own, with an inventory of its own hosts only and a temp directory of its own (AWX gives
slice k the hosts k, k+n, k+2n...: the inventory keeps a pair's clusters in one slice), all slices at once.

Per run: wall time (the slowest slice), CPU of every process, the largest process's peak memory, ARM, Graph and
Kubernetes requests, 429s, requests per ARM bucket (subscription and principal), and the throttle bound: the least
time ARM's buckets allow for those requests. Printed, and written to tests/output/benchmark-fleet.{json,md,png};
never asserted (``make test`` asserts counts).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from tests.benchmark.estate import workload
from tests.benchmark.measure import LogTail, MachineLoad, count_requests, recap, run_measured, throttle_bound
from tests.integration.sandbox_helpers import PROJECT, TEST_SETTINGS, Sandbox, running
from tests.sandbox.demo import ansible_env, deploy_apps

LATENCY_MS = 40
FORKS = 8  # an operator's choice for a fleet; AWX gives each slice the template's forks
RUNS = ("cold", "no-op", "one change", "teardown")
OUTPUT = PROJECT / "tests" / "output"


class Fleet:
    """The clusters, their subscriptions and workloads, and the inventory (whole, or one slice of it)."""

    def __init__(self, box: Sandbox, clusters: int, workloads: int, shared: int) -> None:
        self.box = box
        self.subscriptions = [box.subscription_id, box.control.add_subscription("Fleet subscription B")]
        self.hosts: dict[str, dict[str, Any]] = {}
        for sub in self.subscriptions:
            for group in ("rg-id-fleet", "rg-data-fleet"):
                path = f"/subscriptions/{sub}/resourcegroups/{group}"
                response = box.raw("PUT", path, {"location": "westeurope"}, api_version="2022-09-01")
                assert response.status_code in (200, 201), response.text
        for index in range(clusters):
            sub = self.subscriptions[index % 2]
            name = f"aks-fleet-{index:02d}"
            box.control.seed_cluster(f"rg-{name}", name, kube=True, subscription_id=sub)
            data = f"/subscriptions/{sub}/resourceGroups/rg-data-fleet"
            own = [workload(i, data) for i in range(workloads - shared)]
            # Pairs in one subscription, four hosts apart (0 and 4, 1 and 5, ..., 8 and 12, ...): sliced in 2 or 4 as
            # AWX slices (hosts k, k+n, ...), a pair stays in one slice, as docs/awx.md asks of a sliced inventory
            # (a slice does not know another slice's clusters, so cannot agree to a shared identity's grants).
            pair = f"p{index // 8:02d}{index % 4}"
            together = [
                {**workload(1000 + k, data), "identity_name": f"id-fleet-{pair}-{k}", "name": f"shared-{k}"}
                for k in range(shared)
            ]
            for item in together:
                item["service_account"] = item["name"]
                item["controllers"] = [{"kind": "Deployment", "name": item["name"]}]
            self.hosts[name] = {
                "ansible_connection": "local",
                "workload_identity_azure_auth": {"subscription_id": sub},
                "workload_identity_cluster_resource_group": f"rg-{name}",
                "workload_identity_identity_resource_group": "rg-id-fleet",
                "workload_identity_location": "westeurope",
                "workload_identity_webhook_mode": "addon",
                "workload_identity_kube_context": name,
                "workload_identity_prune": True,
                "workload_identity_workloads": own + together,
            }
            apps = [("Deployment", w["namespace"], w["name"], "ghcr.io/contoso/app:1.0.0") for w in own + together]
            deploy_apps(box.state_dir, name, apps, replicas=1)

    @property
    def size(self) -> int:
        return sum(len(h["workload_identity_workloads"]) for h in self.hosts.values())

    def slices(self, count: int) -> list[list[str]]:
        names = sorted(self.hosts)
        return [names[k::count] for k in range(count)]

    def change_one(self, changed: bool) -> None:
        """Day two: one workload of one cluster is also granted AcrPull (``changed``), or as it was declared."""
        first = self.hosts[sorted(self.hosts)[0]]["workload_identity_workloads"][0]
        first["roles"] = first["roles"][:1] + (
            [{"role": "AcrPull", "scope": first["roles"][0]["scope"]}] if changed else []
        )

    def write_inventory(self, folder: Path, hosts: list[str]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "hosts.yml"
        report = {"workload_identity_report_dir": str(folder / "reports")}
        body = {"all": {"hosts": {h: {**self.hosts[h], **report} for h in hosts}}}
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        return path


class FleetBench:
    def __init__(self, box: Sandbox, fleet: Fleet, work: Path) -> None:
        self.box, self.fleet, self.work = box, fleet, work
        self.azure_log = LogTail(box.state_dir / "requests.jsonl")
        self.limits = box.control.call("GET", "/_sandbox/config")["buckets"]
        self.rows: list[dict[str, Any]] = []

    def run(self, slicing: int, run: str) -> dict[str, Any]:
        self.fleet.change_one(run in ("one change", "teardown"))
        playbook = PROJECT / "playbooks" / ("teardown.yml" if run == "teardown" else "site.yml")
        binary = PROJECT / ".venv" / "bin" / "ansible-playbook"
        base = ansible_env(self.box.env, self.box.state_dir)
        commands, logs = [], []
        for k, hosts in enumerate(self.fleet.slices(slicing)):
            folder = self.work / f"{slicing}-{run.replace(' ', '-')}-slice{k}"
            inventory = self.fleet.write_inventory(folder, hosts)
            node = folder / "node"  # each slice its own temp and Ansible home, as its own node has
            (node / "tmp").mkdir(parents=True)
            env = f"TMPDIR={node}/tmp ANSIBLE_LOCAL_TEMP={node}/tmp ANSIBLE_HOME={node} ANSIBLE_FORKS={FORKS}"
            logs.append(folder / "output.log")
            commands.append(f"env {env} {binary} -i {inventory} {playbook} > {logs[-1]} 2>&1 &")
        script = " ".join(commands) + " failed=0; for job in $(jobs -p); do wait $job || failed=1; done; exit $failed"
        self.box.control.configure({"buckets": self.limits})  # full buckets at the start (the bound assumes so)
        kube_logs = [LogTail(self.box.state_dir / "kube" / name / "audit.log") for name in self.fleet.hosts]
        for tail in (self.azure_log, *kube_logs):
            tail.mark()
        load = MachineLoad([os.getpid(), self.box.server_pid])
        measured = run_measured(["bash", "-c", script], base, PROJECT)
        outputs = [log.read_text() for log in logs]
        if measured.returncode != 0:
            raise SystemExit(f"{run} sliced in {slicing} failed:\n" + "\n".join(o[-4000:] for o in outputs))
        time.sleep(0.5)  # the API servers write their audit batches asynchronously
        counted = count_requests(self.azure_log.lines(), [line for tail in kube_logs for line in tail.lines()])
        recaps = [recap(output) for output in outputs]
        row = {
            "slices": slicing,
            "run": run,
            "clusters": len(self.fleet.hosts),
            "workloads": self.fleet.size,
            "forks": FORKS,
            "seconds": measured.seconds,
            "throttle_bound_s": throttle_bound(counted.buckets, self.limits),
            "cpu_seconds": measured.cpu_seconds,
            "peak_rss_mb_largest": measured.peak_rss_mb_largest,
            "peak_rss_mb_tree": measured.peak_rss_mb_tree,
            "other_load_cores": load.other_cores(measured.cpu_seconds),
            "arm": counted.arm,
            "throttled": counted.throttled,
            "graph": counted.graph,
            "kube": counted.kube,
            "writes": counted.writes,
            "changed": sum(host.get("changed", 0) for found in recaps for host in found.values()),
            "buckets": counted.buckets,
        }
        self.rows.append(row)
        print(
            f"  sliced in {slicing}  {run:<10} {row['seconds']:>7.1f} s (bound {row['throttle_bound_s']:>6.1f})"
            f"  cpu {row['cpu_seconds']:>7.1f} s  ARM {row['arm']:>6} (429: {row['throttled']:>5})"
            f"  kube {row['kube']:>6}  writes {row['writes']:>6}  changed {row['changed']:>4}"
            f"  largest {row['peak_rss_mb_largest']:>5.0f} MB  other load {row['other_load_cores']:.2f} cores",
            flush=True,
        )
        return row


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"{report['clusters']} clusters in 2 subscriptions, {report['workloads']} workloads "
        f"({report['shared']} per cluster shared with its pair), {report['forks']} forks per job, "
        f"{report['latency_ms']} ms per request, ARM throttling on; {report['cores']} cores.",
        "",
        "| slices | run | s | bound s | CPU s | ARM requests (429s) | busiest ARM bucket | Kubernetes | writes "
        "| changed | largest process |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["runs"]:
        busiest = max(row["buckets"].items(), key=lambda item: item[1], default=None)
        bucket = f"{busiest[0].split()[0]} {busiest[1]}" if busiest else "-"
        lines.append(
            f"| {row['slices']} | {row['run']} | {row['seconds']:.1f} | {row['throttle_bound_s']:.1f} "
            f"| {row['cpu_seconds']:.1f} | {row['arm']} ({row['throttled']}) | {bucket} "
            f"| {row['kube']} | {row['writes']} | {row['changed']} | {row['peak_rss_mb_largest']:.0f} MB |"
        )
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(9, 4.8))
    width = 0.25
    slicings = sorted({r["slices"] for r in report["runs"]})
    for offset, slicing in enumerate(slicings):
        rows = {r["run"]: r for r in report["runs"] if r["slices"] == slicing}
        xs = [i + (offset - (len(slicings) - 1) / 2) * width for i in range(len(RUNS))]
        label = "one job" if slicing == 1 else f"sliced in {slicing}"
        axis.bar(xs, [rows[r]["seconds"] if r in rows else 0 for r in RUNS], width, label=label)
        axis.plot(xs, [rows[r]["throttle_bound_s"] if r in rows else 0 for r in RUNS], "kx")
    axis.plot([], [], "kx", label="ARM throttle bound")
    axis.set_xticks(range(len(RUNS)), RUNS)
    axis.set_ylabel("wall time, s")
    axis.set_title(f"site.yml over {report['clusters']} clusters, {report['workloads']} workloads, 2 subscriptions")
    axis.legend(fontsize=8)
    axis.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmark.fleet", description=(__doc__ or "").split("\n\n", maxsplit=1)[0]
    )
    parser.add_argument("--clusters", type=int, default=24)
    parser.add_argument("--workloads", type=int, default=40, help="per cluster")
    parser.add_argument("--shared", type=int, default=4, help="of each cluster's workloads, shared with its pair")
    parser.add_argument("--slicings", default="1,2,4", help="how many slices, comma-separated")
    parser.add_argument(
        "--merge", action="store_true", help="keep the rows of tests/output/benchmark-fleet.json for other slicings"
    )
    args = parser.parse_args()
    slicings = [int(s) for s in args.slicings.split(",")]
    kept = []
    if args.merge and (OUTPUT / "benchmark-fleet.json").exists():
        kept = [
            r for r in json.loads((OUTPUT / "benchmark-fleet.json").read_text())["runs"] if r["slices"] not in slicings
        ]
    work = PROJECT / ".build" / "bench-fleet"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with running(work / "sandbox", {**TEST_SETTINGS, "kube_clusters": True}) as box:
        print(f"==> {args.clusters} clusters of {args.workloads} workloads (their API servers, their apps)", flush=True)
        fleet = Fleet(box, args.clusters, args.workloads, args.shared)
        box.control.configure({"throttling": True, "latency_ms": LATENCY_MS, "lro_seconds": 2.0})
        bench = FleetBench(box, fleet, work)
        print(f"==> site.yml ({LATENCY_MS} ms per request, ARM throttling on, {FORKS} forks per job)", flush=True)
        report = {
            "clusters": args.clusters,
            "workloads": fleet.size,
            "shared": args.shared,
            "forks": FORKS,
            "latency_ms": LATENCY_MS,
            "cores": os.cpu_count(),
            "buckets": bench.limits,
            "runs": kept,
        }
        OUTPUT.mkdir(exist_ok=True)
        for slicing in slicings:
            for run in RUNS:
                bench.run(slicing, run)
                # Written after every run: a run that fails keeps what was measured before it.
                report["runs"] = sorted(kept + bench.rows, key=lambda r: (r["slices"], RUNS.index(r["run"])))
                (OUTPUT / "benchmark-fleet.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (OUTPUT / "benchmark-fleet.md").write_text(text)
    chart(report, OUTPUT / "benchmark-fleet.png")
    print(text)


if __name__ == "__main__":
    main()
