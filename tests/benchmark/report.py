"""The benchmark's outputs: JSON, a Markdown table with the targets, and a chart (time and requests against N)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

COLUMNS = (
    ("N", "workloads"),
    ("tool", "tool"),
    ("run", "run"),
    ("#", "repeat"),
    ("s", "seconds"),
    ("floor s", "request_floor_s"),
    ("bound s", "throttle_bound_s"),
    ("CPU s", "cpu_seconds"),
    ("ARM", "arm"),
    ("Entra", "entra"),
    ("Graph", "graph"),
    ("429s", "throttled"),
    ("kube", "kube"),
    ("writes", "writes"),
    ("tasks", "tasks"),
    ("changed", "changed"),
    ("RSS MB largest", "peak_rss_mb_largest"),
    ("RSS MB tree", "peak_rss_mb_tree"),
    ("load", "load_average"),
    ("other cores", "other_load_cores"),
    ("trusted", "trusted"),
)


def runs_of(rows: list[dict[str, Any]], tool: str, run: str, size: int) -> list[dict[str, Any]]:
    """The runs measured under no other load, or all of them when none was (then the median says so)."""
    found = [r for r in rows if r["tool"] == tool and r["run"] == run and r["workloads"] == size]
    return [r for r in found if r.get("trusted", True)] or found


def median(rows: list[dict[str, Any]], tool: str, run: str, size: int, key: str) -> float | None:
    values = [r[key] for r in runs_of(rows, tool, run, size) if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def _row(rows: list[dict[str, Any]], tool: str, run: str, size: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["tool"] == tool and r["run"] == run and r["workloads"] == size), None)


def targets(report: dict[str, Any], rows: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(target, what was measured, met) for what this report can show. Time is judged on medians of the alternated
    runs; the peer on CPU seconds, which move least with the machine's load."""
    found: list[tuple[str, str, bool]] = []
    ours = [r for r in rows if r["tool"] == "ours"]
    sizes = sorted({r["workloads"] for r in ours})
    if not sizes:
        return found
    big, small = sizes[-1], sizes[0]
    noop, cold = _row(rows, "ours", "no-op", big), _row(rows, "ours", "cold", big)
    change = _row(rows, "ours", "one change", big)
    if noop:
        needed = noop.get("arm_answered", noop["arm"])
        arm_text = f"{needed} (+{noop['arm'] - needed} answered 429 and retried)"
        # N credential lists, the identity list's pages of 100, the cluster, role definitions and assignments.
        pages = -(-big // 100)
        found.append((f"no-op at N={big}: ARM requests <= N + 4 + {pages} pages", arm_text, needed <= big + 4 + pages))
        found.append((f"no-op at N={big}: Kubernetes requests <= 50", f"{noop['kube']}", noop["kube"] <= 50))
        found.append((f"no-op at N={big}: changed=0", f"changed={noop['changed']}", noop["changed"] == 0))
    floor_size = 200 if 200 in sizes else big
    wall = median(rows, "ours", "no-op", floor_size, "seconds")
    trivial = median(rows, "ansible", "trivial play", floor_size, "seconds")
    floor = median(rows, "ours", "no-op", floor_size, "request_floor_s")
    if wall is not None and trivial is not None and floor is not None:
        allowed = trivial + 2 * floor
        found.append(
            (
                f"no-op at N={floor_size}: <= the trivial play + 2x the request floor (medians)",
                f"{wall} s vs {trivial} + 2 x {floor} = {allowed:.2f} s",
                wall <= allowed,
            )
        )
    if cold:
        bound = cold["throttle_bound_s"]
        ratio = cold["seconds"] / bound if bound else 0.0
        found.append(
            (
                f"cold at N={big}: within 1.5x the throttle bound",
                f"{cold['seconds']} s vs {bound} s ({ratio:.2f}x)",
                bound == 0 or ratio <= 1.5,
            )
        )
    if change:
        found.append(
            (f"one changed workload at N={big}: <= 10 write requests", f"{change['writes']}", change["writes"] <= 10)
        )
        noop_wall = median(rows, "ours", "no-op", big, "seconds")
        if noop_wall:
            ratio = change["seconds"] / noop_wall
            found.append(
                (
                    f"one changed workload at N={big}: within 1.2x the no-op (median)",
                    f"{change['seconds']} s vs {noop_wall} s ({ratio:.2f}x)",
                    ratio <= 1.2,
                )
            )
    for run in ("cold", "no-op", "check mode", "one change", "teardown"):
        plays = {size: (_row(rows, "ours", run, size) or {}).get("tasks_per_play") for size in sizes}
        shapes = {json.dumps(p, sort_keys=True) for p in plays.values() if p is not None}
        if shapes:
            counts = ", ".join(f"N={s}: {sum(p.values())}" for s, p in plays.items() if p)
            found.append((f"tasks per play constant in N ({run})", counts, len(shapes) == 1))
    start = max(report.get("module_start_s", {}).values(), default=0.0)
    found.append(("module start <= 0.5 s", f"{start:.2f} s", start <= 0.5))
    if big != small:
        # The largest process of any run at that size (the controller, holding every registered result).
        first, last = (max(r["peak_rss_mb_largest"] for r in ours if r["workloads"] == n) for n in (small, big))
        found.append(
            (
                f"controller memory flat in N (largest process of any run, N={small} -> {big}, <= 1.2x)",
                f"{first} -> {last} MB ({last / first:.2f}x)",
                last / first <= 1.2,
            )
        )
    if big != small:
        # What the rollout adds to Ansible's own memory for that inventory (the trivial play's largest process): a
        # thousand workloads in YAML cost Ansible itself as much as anything the rollout holds.
        added = []
        for n in (small, big):
            trivial = [r["peak_rss_mb_largest"] for r in rows if r["tool"] == "ansible" and r["workloads"] == n]
            if trivial:
                added.append(max(r["peak_rss_mb_largest"] for r in ours if r["workloads"] == n) - max(trivial))
        if len(added) == 2 and added[0] > 0:
            found.append(
                (
                    f"memory over the trivial play's flat in N (N={small} -> {big}, <= 1.2x)",
                    f"{added[0]:.1f} -> {added[1]:.1f} MB ({added[1] / added[0]:.2f}x)",
                    added[1] / added[0] <= 1.2,
                )
            )
    for run in ("cold", "no-op"):
        ours_cpu, peer_cpu = (median(rows, tool, run, 50, "cpu_seconds") for tool in ("ours", "peer"))
        if ours_cpu and peer_cpu:
            ratio = peer_cpu / ours_cpu
            how = "median of alternated runs" if run == "no-op" else "one run each"
            found.append((f"peer's CPU seconds >= 20x ours at N=50 ({run}, {how})", f"{ratio:.1f}x", ratio >= 20))
    return found


def medians(rows: list[dict[str, Any]]) -> list[str]:
    """Per size, tool and run: the median of its runs (trusted ones), and how many there were."""
    lines = []
    keys = sorted({(r["workloads"], r["tool"], r["run"]) for r in rows}, key=lambda k: (k[0], k[1] != "ours", k[2]))
    for size, tool, run in keys:
        every = [r for r in rows if (r["workloads"], r["tool"], r["run"]) == (size, tool, run)]
        used = runs_of(rows, tool, run, size)
        lines.append(
            f"| {size} | {tool} | {run} | {median(rows, tool, run, size, 'seconds')} "
            f"| {median(rows, tool, run, size, 'cpu_seconds')} | {median(rows, tool, run, size, 'request_floor_s')} "
            f"| {len(used)} of {len(every)} |"
        )
    return lines


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for size in sorted({r["workloads"] for r in rows if r["tool"] == "peer"}):
        for run in ("cold", "no-op"):
            peer_wall, ours_wall, peer_cpu, ours_cpu = (
                median(rows, tool, run, size, key) for key in ("seconds", "cpu_seconds") for tool in ("peer", "ours")
            )
            ours_row, peer_row = _row(rows, "ours", run, size), _row(rows, "peer", run, size)
            if ours_row and peer_row and peer_wall and ours_wall and peer_cpu and ours_cpu:
                lines.append(
                    f"| {size} | {run} | {peer_wall / ours_wall:.1f}x | {peer_cpu / ours_cpu:.1f}x "
                    f"| {peer_row['arm'] + peer_row['graph']} / {ours_row['arm'] + ours_row['graph']} |"
                )
    return lines


def markdown(report: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(title for title, _key in COLUMNS) + " |"
    lines = [
        f"# Benchmark: the whole rollout against the sandbox ({report['latency_ms']} ms a request, ARM throttling on)",
        "",
        f"Buckets (capacity, refill/s): {report.get('buckets')}. `bound s`: the least time those buckets allow for",
        "the run's requests. `floor s`: the time at least one of its requests was in flight. `writes`: ARM, Graph and",
        "Kubernetes writes. RSS: the largest process, and the whole tree. `load`: the 1-minute load average when the",
        "run started; `other cores`: what other processes kept busy during it (a run above",
        "0.25 is not trusted, and left out of the medians while a trusted one exists).",
        "",
        head,
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(str(row.get(key, "")) for _title, key in COLUMNS) + " |" for row in rows]
    lines += [
        "",
        "| N | tool | run | median s | median CPU s | median floor s | trusted runs |",
        "|---|---|---|---|---|---|---|",
        *medians(rows),
    ]
    peer = ratios(rows)
    if peer:
        lines += [
            "",
            "| N | run | peer / ours, wall (medians) | peer / ours, CPU (medians) | ARM+Graph requests, peer / ours |",
            "|---|---|---|---|---|",
        ]
        lines += peer
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [
        f"| {what} | {measured} | {'yes' if met else '**no**'} |" for what, measured, met in targets(report, rows)
    ]
    starts = ", ".join(f"{sdk} {s:.2f} s" for sdk, s in report.get("module_start_s", {}).items())
    lines += ["", f"Module start (fresh interpreter, imports + credential + client): {starts}."]
    if report.get("sandbox_reads_ms"):
        reads = ", ".join(f"{what} {ms} ms" for what, ms in report["sandbox_reads_ms"].items())
        lines += ["", f"The sandbox's reads of a 500-identity estate (median of 15, no added latency): {reads}."]
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.8))
    series = [
        ("ours", "cold", "tab:blue", "-"),
        ("ours", "no-op", "tab:blue", "--"),
        ("ours", "one change", "tab:cyan", ":"),
        ("peer", "cold", "tab:red", "-"),
        ("peer", "no-op", "tab:red", "--"),
        ("ansible", "trivial play", "tab:gray", "-."),
    ]
    for tool, run, colour, style in series:
        # Per size, the median of its runs (repeated runs share a size) and the requests of one of them.
        sizes = sorted({r["workloads"] for r in rows if r["tool"] == tool and r["run"] == run})
        if not sizes:
            continue
        points = [(n, runs_of(rows, tool, run, n)[0]) for n in sizes]
        label = f"{'workload_identity.aks' if tool == 'ours' else 'azure.azcollection + kubernetes.core'}, {run}"
        if tool == "ansible":
            label = "a trivial play on the same inventory (Ansible's own start)"
        left.plot(
            sizes, [median(rows, tool, run, n, "seconds") for n in sizes], style, color=colour, marker="o", label=label
        )
        if tool != "ansible":
            right.plot(sizes, [r["arm"] + r["graph"] for _n, r in points], style, color=colour, marker="o", label=label)
        if tool == "ours" and run == "cold":
            bound = [(n, r["throttle_bound_s"]) for n, r in points if r["throttle_bound_s"] > 0]
            if bound:
                left.plot(
                    [b[0] for b in bound],
                    [b[1] for b in bound],
                    ":",
                    color="black",
                    marker="x",
                    label="ARM throttle bound, cold",
                )
    for axis, title in ((left, "wall time, s"), (right, "ARM + Graph requests")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("workloads (N)")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    figure.suptitle("site.yml against the sandbox (40 ms a request, ARM throttling on)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def render(report: dict[str, Any], json_path: Path, md_path: Path, png_path: Path) -> str:
    """Write the three files; the Markdown, to print. The chart also shows the peer's last run (benchmark-peer.json)."""
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    rows = list(report["runs"])
    other = json_path.with_name("benchmark-peer.json")
    if other != json_path and other.exists() and not any(r["tool"] == "peer" for r in rows):
        rows += [r for r in json.loads(other.read_text())["runs"] if r["tool"] == "peer"]
    text = markdown(report, rows)
    md_path.write_text(text)
    chart(rows, png_path)
    return text + f"\nWritten: {json_path}, {md_path}, {png_path}\n"
