"""Measuring one ansible-playbook run: wall time, CPU, memory, and every request it caused, by kind.

Requests are read from what the servers recorded, not from the client: the sandbox's request log (ARM, Entra
and Graph, with method and principal) and each cluster's API-server audit log (verb and user agent).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
# Not the rollout's traffic: the cluster's own components, the add-on's webhook, and the sandbox itself acting as
# AKS (installing the add-on, with urllib). The rollout's clients are the Python client (OpenAPI-Generator) and helm.
CONTROL_PLANE_AGENTS = ("kube-controller-manager", "kube-apiserver", "azure-workload-identity/", "Python-urllib")
KUBE_WRITES = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class Measured:
    seconds: float
    cpu_seconds: float
    peak_rss_mb_largest: float  # the largest single process of the tree (getrusage's maxrss)
    peak_rss_mb_tree: float  # the whole tree at its largest, sampled every 0.1 s
    returncode: int
    output: str


def _tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants (read from /proc; vanished processes count 0)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(parents.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            pass
    return total


def run_measured(command: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """Run to the end; CPU and the largest process from wait4 (every descendant ansible waited for counts)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: process.stdout.read(65536), b"")))  # type: ignore[union-attr]
    reader.start()
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, _tree_rss(process.pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _pid, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        # Interrupted (Ctrl-C, a failing harness): the playbook goes too, and the threads stop, so nothing hangs.
        process.kill()
        process.wait()
        raise
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        seconds=round(seconds, 2),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 2),
        peak_rss_mb_largest=round(usage.ru_maxrss / 1024, 1),
        peak_rss_mb_tree=round(peak_tree / 2**20, 1),
        returncode=process.returncode,
        output=b"".join(chunks).decode(errors="replace"),
    )


class LogTail:
    """The lines a file gained since it was marked (for logs that only grow during a run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            return [json.loads(line) for line in handle.read().splitlines() if line.strip()]


@dataclass
class Requests:
    """What one run asked of Azure and of Kubernetes."""

    arm: int = 0
    entra: int = 0
    graph: int = 0
    throttled: int = 0  # answered 429 (and retried)
    arm_throttled: int = 0
    arm_writes: int = 0
    graph_writes: int = 0
    kube: int = 0
    kube_writes: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    kube_by_verb: dict[str, int] = field(default_factory=dict)
    # Requests that took a token from each throttling bucket: (bucket, subscription or tenant, principal) -> count.
    buckets: dict[str, int] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return self.arm_writes + self.graph_writes + self.kube_writes


SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.I)


def count_requests(azure: list[dict[str, Any]], kube: list[dict[str, Any]]) -> Requests:
    counted = Requests()
    operations: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for entry in azure:
        service = entry.get("service")
        if service == "control":
            continue
        operations[entry["operation"]] += 1
        if entry["status"] == 429:
            counted.throttled += 1
        if service == "arm":
            counted.arm += 1
            counted.arm_throttled += entry["status"] == 429
            kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(entry["method"], "writes")
            counted.arm_writes += kind != "reads"
            if entry["status"] != 429 and entry.get("principal"):
                found = SUBSCRIPTION.match(entry["path"])
                buckets[f"{kind} {found.group(1).lower() if found else 'tenant'} {entry['principal']}"] += 1
        elif service == "graph":
            counted.graph += 1
            counted.graph_writes += entry["method"] != "GET"
            if entry["status"] != 429 and entry.get("principal"):
                buckets[f"graph tenant {entry['principal']}"] += 1
        else:
            counted.entra += 1
    verbs: Counter[str] = Counter()
    for event in kube:
        agent = event.get("userAgent", "")
        if agent.startswith(CONTROL_PLANE_AGENTS):
            continue
        verbs[event["verb"]] += 1
    counted.kube = sum(verbs.values())
    counted.kube_writes = sum(n for verb, n in verbs.items() if verb in KUBE_WRITES)
    counted.by_operation = dict(sorted(operations.items()))
    counted.kube_by_verb = dict(sorted(verbs.items()))
    counted.buckets = dict(sorted(buckets.items()))
    return counted


def throttle_bound(buckets: dict[str, int], limits: dict[str, list[float]]) -> float:
    """The least time ARM's (and Graph's) token buckets allow for these requests, buckets full at the start:
    the slowest bucket's (requests - capacity) / refill per second. Buckets refill side by side."""
    bound = 0.0
    for key, count in buckets.items():
        capacity, refill = limits[key.split()[0]]
        bound = max(bound, (count - capacity) / refill)
    return round(bound, 1)


def tasks_per_play(output: str) -> dict[str, int]:
    """Task headers the default callback printed, per play (included tasks count where they ran)."""
    plays: dict[str, int] = {}
    play = ""
    for line in output.splitlines():
        if line.startswith("PLAY [") and not line.startswith("PLAY RECAP"):
            play = line[6 : line.rindex("]")]
            plays.setdefault(play, 0)
        elif line.startswith("TASK [") and play:
            plays[play] += 1
    return plays


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP, per host: ok, changed, failed ... as numbers."""
    hosts = {}
    for found in re.finditer(r"^(\S+)\s+: ((?:\w+=\d+\s*)+)$", output, re.M):
        hosts[found.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found.group(2))}
    return hosts
