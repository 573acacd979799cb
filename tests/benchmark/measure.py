"""Measuring one ansible-playbook run: wall time, CPU, memory, and every request it caused, by kind.

Requests are read from what the servers recorded, not from the client: the sandbox's request log (ARM, Entra
and Graph, with method and principal) and each cluster's API-server audit log (verb and user agent). From the same
logs, the request floor: the time at least one of the run's requests was in flight.

A shared machine's other load moves every time measured here; ``MachineLoad`` measures it during each run (the CPU
the machine spent on processes that are neither the run nor the servers it talks to), so that a row measured
under load is marked, and not trusted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
# Not the rollout's traffic: the cluster's own components, the add-on's webhook, and the sandbox itself acting as
# AKS (installing the add-on, with urllib). The rollout's clients are the Python client (OpenAPI-Generator) and helm.
CONTROL_PLANE_AGENTS = ("kube-controller-manager", "kube-apiserver", "azure-workload-identity/", "Python-urllib")
KUBE_WRITES = {"create", "update", "patch", "delete", "deletecollection"}


TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    seconds: float
    cpu_seconds: float
    peak_rss_mb_largest: float  # the largest single process of the tree, at its peak (sampled VmHWM)
    peak_rss_mb_tree: float  # the whole tree at its largest, sampled every 0.1 s
    returncode: int
    output: str


def _processes() -> dict[int, tuple[int, int]]:
    """Every process: pid -> (parent pid, CPU ticks so far)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def _busy_ticks() -> int:
    """CPU ticks the machine spent busy (user, nice, system, irq, softirq, steal), all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[:3]) + sum(fields[5:8])


def _descendants(roots: Iterable[int], processes: dict[int, tuple[int, int]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _ticks) in processes.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


class MachineLoad:
    """The other load on the machine during a run: busy CPU that is neither the run (measured by wait4) nor the
    processes under ``ours`` (the harness, the sandbox, the API servers: their own descendants, found when marked).
    In cores: 0.0 on an otherwise idle machine, 1.0 when something else kept a whole core busy throughout."""

    def __init__(self, ours: Iterable[int]) -> None:
        self.ours = list(ours)
        self.started = time.perf_counter()
        self.busy = _busy_ticks()
        self.before = _processes()

    def other_cores(self, run_cpu_seconds: float) -> float:
        seconds = time.perf_counter() - self.started
        after = _processes()
        busy = (_busy_ticks() - self.busy) / TICKS
        mine = _descendants(self.ours, after) | _descendants(self.ours, self.before)
        # The run's own processes have ended (their CPU is the run's); the harness's and the servers' are read here.
        servers = sum(after[p][1] - self.before.get(p, (0, 0))[1] for p in mine if p in after) / TICKS
        return round(max(0.0, busy - run_cpu_seconds - servers) / seconds, 2) if seconds > 0 else 0.0


def _instant(value: str) -> float:
    """An audit log's RFC 3339 time (microseconds, Z), as seconds since the epoch."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def request_floor(azure: list[dict[str, Any]], kube: list[dict[str, Any]]) -> float:
    """Seconds during which at least one of the run's requests was in flight (the union of their intervals): what
    the run would take if the client cost nothing and kept its requests as they were, in sequence or in parallel."""
    spans = [
        (entry["ts"] - entry["ms"] / 1000, entry["ts"])
        for entry in azure
        if entry.get("service") != "control" and isinstance(entry.get("ms"), (int, float))
    ]
    spans += [
        (_instant(event["requestReceivedTimestamp"]), _instant(event["stageTimestamp"]))
        for event in kube
        if not event.get("userAgent", "").startswith(CONTROL_PLANE_AGENTS) and event.get("stageTimestamp")
    ]
    total, reached = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return round(total, 2)


def _tree_rss(root: int, peaks: dict[int, int]) -> int:
    """Resident bytes of a process and all its descendants (read from /proc; vanished processes count 0); ``peaks``
    gets each one's own peak so far (VmHWM, which only grows until an exec resets it: the last reading is the one
    kept). Not getrusage's maxrss: a child forked from this harness counts the harness's memory, shared at the fork,
    as its own until it execs."""
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
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if found:
            peaks[pid] = int(found.group(1)) * 1024
    return total


def run_measured(command: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """Run to the end; CPU from wait4 (every descendant ansible waited for counts), memory sampled every 0.1 s."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: process.stdout.read(65536), b"")))  # type: ignore[union-attr]
    reader.start()
    peak_tree = 0
    peaks: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, _tree_rss(process.pid, peaks))
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
        peak_rss_mb_largest=round(max(peaks.values(), default=0) / 2**20, 1),
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
