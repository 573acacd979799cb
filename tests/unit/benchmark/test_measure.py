"""The benchmark's arithmetic: requests counted by kind from the servers' logs, the throttle bound, tasks, recap."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

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
from tests.benchmark.report import median, targets

SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"


def entry(method: str, operation: str, status: int = 200, service: str = "arm", principal: str = "p1") -> dict:
    return {
        "method": method,
        "operation": operation,
        "status": status,
        "service": service,
        "principal": principal,
        "path": f"/subscriptions/{SUB}/resourceGroups/rg/providers/x",
    }


def test_requests_are_counted_by_service_bucket_and_kube_agent() -> None:
    azure = [
        entry("GET", "userAssignedIdentities.get"),
        entry("PUT", "userAssignedIdentities.put"),
        entry("PUT", "userAssignedIdentities.put", status=429),
        entry("DELETE", "roleAssignments.delete"),
        entry("POST", "entra.token", service="entra", principal=""),
        entry("POST", "graph.applications.create", service="graph"),
        entry("GET", "sandbox.stats", service="control"),
    ]
    kube = [
        {"verb": "get", "userAgent": "OpenAPI-Generator/37.0.2/python"},
        {"verb": "patch", "userAgent": "OpenAPI-Generator/37.0.2/python"},
        {"verb": "list", "userAgent": "kube-controller-manager/v1.36.3 (linux/amd64)"},
    ]
    counted = count_requests(azure, kube)
    assert (counted.arm, counted.entra, counted.graph, counted.throttled) == (4, 1, 1, 1)
    # The throttled PUT took no token; writes count every ARM/Graph/Kubernetes write asked for.
    assert counted.buckets == {
        f"deletes {SUB} p1": 1,
        f"reads {SUB} p1": 1,
        f"writes {SUB} p1": 1,
        "graph tenant p1": 1,
    }
    assert (counted.kube, counted.kube_writes, counted.writes) == (2, 1, 1 + 2 + 1 + 1)
    assert "sandbox.stats" not in counted.by_operation


def test_throttle_bound_is_the_slowest_bucket_beyond_its_capacity() -> None:
    limits = {"reads": [250, 25], "writes": [200, 10], "deletes": [200, 10], "graph": [3500, 350]}
    assert throttle_bound({f"writes {SUB} p1": 150, f"reads {SUB} p1": 200}, limits) == 0
    assert throttle_bound({f"writes {SUB} p1": 3200, f"reads {SUB} p1": 1250}, limits) == 300.0
    # Two principals have buckets of their own.
    assert throttle_bound({f"writes {SUB} p1": 1200, f"writes {SUB} p2": 1200}, limits) == 100.0


def test_tasks_per_play_and_recap_from_the_default_callback() -> None:
    output = """
PLAY [Validate] ****
TASK [Validate the workload list] ****
ok: [aks-1]
TASK [workload_identity.aks.workloads : Plan] ****
ok: [aks-1]
PLAY [Roll out] ****
TASK [workload_identity.aks.oidc_issuer : Read] ****
ok: [aks-1]
PLAY RECAP ****
aks-1                      : ok=3    changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0
"""
    assert tasks_per_play(output) == {"Validate": 2, "Roll out": 1}
    assert recap(output)["aks-1"]["changed"] == 1 and recap(output)["aks-1"]["skipped"] == 2


def test_a_run_is_measured_and_a_log_read_from_its_mark(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    log.write_text('{"a": 1}\n')
    tail = LogTail(log)
    tail.mark()
    # Memory is sampled every 0.1 s: the child lives through several samples (a loaded machine may miss a short one).
    script = f"import time; open({str(log)!r}, 'a').write('{{\"b\": 2}}\\n'); time.sleep(1); print('done')"
    measured = run_measured([sys.executable, "-c", script], {}, tmp_path)
    assert measured.returncode == 0 and measured.output.strip() == "done"
    assert measured.peak_rss_mb_largest > 0
    # The child's CPU is what is counted (this process's own is not): a child that computes shows some.
    busy = run_measured([sys.executable, "-c", "print(sum(range(20_000_000)))"], {}, tmp_path)
    assert busy.cpu_seconds > 0 and busy.cpu_seconds >= measured.cpu_seconds
    assert tail.lines() == [{"b": 2}]


def test_an_interrupted_measurement_stops_its_run_and_its_threads(tmp_path: Path) -> None:
    """Ctrl-C (here: an exception raised by a signal while the harness waits) kills the playbook and ends the
    sampler and reader threads: the bench stops instead of hanging."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    threads = threading.active_count()
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_measured(
                [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(600)"], {}, tmp_path
            )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert threading.active_count() == threads


def test_targets_name_what_is_missed() -> None:
    plays = {"Plan": 5, "Roll out": 12}
    rows = [
        {
            "tool": "ours",
            "run": "no-op",
            "workloads": 1000,
            "arm": 1004,
            "kube": 2500,
            "changed": 0,
            "tasks_per_play": plays,
            "peak_rss_mb_largest": 150.0,
        },
        {
            "tool": "ours",
            "run": "no-op",
            "workloads": 10,
            "arm": 14,
            "kube": 30,
            "changed": 0,
            "tasks_per_play": {**plays, "Roll out": 13},
            "peak_rss_mb_largest": 100.0,
        },
    ]
    met = {what: ok for what, _measured, ok in targets({"module_start_s": {"msi": 0.4}}, rows)}
    assert met["no-op at N=1000: ARM requests <= N + 4 + 10 pages"] is True
    assert met["no-op at N=1000: Kubernetes requests <= 50"] is False
    assert met["tasks per play constant in N (no-op)"] is False
    assert met["module start <= 0.5 s"] is True
    assert met["controller memory flat in N (largest process of any run, N=10 -> 1000, <= 1.2x)"] is False
    # Ansible's own start on each inventory: what the rollout adds to it is 30 MB at both sizes.
    rows += [
        {"tool": "ansible", "run": "trivial play", "workloads": 10, "peak_rss_mb_largest": 70.0},
        {"tool": "ansible", "run": "trivial play", "workloads": 1000, "peak_rss_mb_largest": 120.0},
    ]
    measured = {what: (text, ok) for what, text, ok in targets({}, rows)}
    assert measured["memory over the trivial play's flat in N (N=10 -> 1000, <= 1.2x)"] == (
        "30.0 -> 30.0 MB (1.00x)",
        True,
    )


def test_the_request_floor_is_the_union_of_the_requests_in_flight() -> None:
    # Azure: [10.0, 10.1] and [10.05, 10.2] overlap (0.2 s); Kubernetes: [11.0, 11.5]. The control plane is not the run.
    azure = [
        {"ts": 10.1, "ms": 100.0, "service": "arm"},
        {"ts": 10.2, "ms": 150.0, "service": "graph"},
        {"ts": 12.0, "ms": 500.0, "service": "control"},
    ]
    kube = [
        {
            "userAgent": "OpenAPI-Generator/31.0.0/python",
            "requestReceivedTimestamp": "1970-01-01T00:00:11.000000Z",
            "stageTimestamp": "1970-01-01T00:00:11.500000Z",
        },
        {
            "userAgent": "kube-controller-manager/v1.36.3",
            "requestReceivedTimestamp": "1970-01-01T00:00:20.000000Z",
            "stageTimestamp": "1970-01-01T00:00:29.000000Z",
        },
    ]
    assert request_floor(azure, kube) == 0.7
    assert request_floor([], []) == 0.0


def test_the_runs_own_cpu_is_never_other_load() -> None:
    # However loaded the machine is, CPU the run itself used (wait4's, passed in) is taken out first, never below 0.
    assert MachineLoad([os.getpid()]).other_cores(10_000.0) == 0.0


def row(run: str, seconds: float, *, tool: str = "ours", size: int = 200, trusted: bool = True, **extra: Any) -> dict:
    return {"tool": tool, "run": run, "workloads": size, "seconds": seconds, "trusted": trusted, **extra}


def test_medians_leave_out_untrusted_runs_while_a_trusted_one_exists() -> None:
    rows = [row("no-op", 5.0), row("no-op", 6.0), row("no-op", 30.0, trusted=False)]
    assert median(rows, "ours", "no-op", 200, "seconds") == 5.5
    only_loaded = [row("no-op", 30.0, trusted=False), row("no-op", 20.0, trusted=False)]
    assert median(only_loaded, "ours", "no-op", 200, "seconds") == 25.0
    assert median(rows, "peer", "no-op", 200, "seconds") is None


def test_the_no_op_is_judged_against_the_trivial_play_and_the_request_floor() -> None:
    common = {"arm": 206, "kube": 39, "changed": 0, "tasks_per_play": {"Plan": 5}, "peak_rss_mb_largest": 80.0}
    rows = [
        row("no-op", 6.0, request_floor_s=2.0, cpu_seconds=4.0, **common),
        row("no-op", 7.0, request_floor_s=2.0, cpu_seconds=4.0, **common),
        row("trivial play", 1.5, tool="ansible"),
        row("trivial play", 1.6, tool="ansible"),
        row("one change", 7.0, writes=1, **{**common, "changed": 1}),
    ]
    rows = [{"peak_rss_mb_largest": 80.0, **r} for r in rows]
    met = {what: (measured, ok) for what, measured, ok in targets({}, rows)}
    measured, ok = met["no-op at N=200: <= the trivial play + 2x the request floor (medians)"]
    assert (measured, ok) == ("6.5 s vs 1.55 + 2 x 2.0 = 5.55 s", False)
    assert met["one changed workload at N=200: within 1.2x the no-op (median)"] == ("7.0 s vs 6.5 s (1.08x)", True)
    peer = [
        row("no-op", 90.0, tool="peer", size=50, cpu_seconds=80.0),
        row("no-op", 5, size=50, cpu_seconds=4.0, **common),
    ]
    met = {what: (measured, ok) for what, measured, ok in targets({}, rows + peer)}
    assert met["peer's CPU seconds >= 20x ours at N=50 (no-op, median of alternated runs)"] == ("20.0x", True)
