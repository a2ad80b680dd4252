"""Replay benchmark on a generated session: prints one JSON report, each figure beside its target.

Targets (on a 1,000,000-operation session of benchmarks/workload.py):
- open <= 300 ms;
- step and back p99 <= 2 ms (each followed by `state()`, as a front end asks after every move);
- goto(random seq) followed by `state()`, p99 <= 25 ms;
- run() with a condition on object fields across the whole session <= 5 s
  (`kind == "Deployment" and obj.spec.replicas == 99`, a value that never occurs);
- run() with a breakpoint the indexes answer (a selector, an error filter) <= 0.2 s;
- analysis of the whole session <= 15 s;
- peak RSS <= 250 MB, and within 10 % of that on a 3,000,000-operation session.

Every measurement runs in a fresh child process (this script with `--child NAME`), so that each
starts cold in the engine (warm in the OS page cache) and reports its own peak RSS.

    python benchmarks/replay_bench.py [--database PATH] [--operations N]
                                      [--compare-database PATH | --three-million]

The database defaults to ~/.cache/opreplay-bench/1m.db and is generated when missing (about 4
minutes for a million operations on a 2-core machine); `--three-million` generates (once, about
12 minutes) and compares against ~/.cache/opreplay-bench/3m.db. Sessions generated without
checkpoints (the workload writes none) get them built in memory by the engine on first need: the
report shows that one-off cost apart (`checkpoints_in_memory`), and the goto figures are measured
after it, as they would be on a recording that has its checkpoints stored.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE = Path.home() / ".cache" / "opreplay-bench"
DEFAULT_DATABASE = CACHE / "1m.db"
THREE_MILLION = CACHE / "3m.db"

FIELD_CONDITION = 'kind == "Deployment" and obj.spec.replicas == 99'
SELECTOR = "Deployment/payments/deployment-0001"
"""The workload puts object i in namespace i % 4: deployment-0001 lives in `payments`."""
INDEXED_CONDITION = 'kind == "Deployment" and name == "deployment-0001" and status == 409'
"""A condition whose operands the indexes answer (replay.prefilter): objects by kind and name, a status."""
NEVER = ">= 1000000000"
"""A hit condition that never fires: the run evaluates every candidate up to the end of the session."""

TARGETS = {
    "open_ms": 300,
    "step_p99_ms": 2,
    "goto_state_p99_ms": 25,
    "field_condition_run_s": 5,
    "index_run_s": 0.2,
    "analysis_s": 15,
    "peak_rss_mb": 250,
    "rss_growth_3m": 0.10,
}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _check(value: float, target: float) -> dict[str, Any]:
    return {"value": value, "target": target, "pass": value <= target}


# -- children: one measurement each ------------------------------------------------------------------


def _open(path: Path) -> Any:
    from opreplay.replay import ReplayEngine

    return ReplayEngine.open(path)


def child_open(path: Path) -> dict[str, Any]:
    from opreplay.replay import ReplayEngine

    times = []
    for _ in range(5):
        started = time.perf_counter()
        engine = ReplayEngine.open(path)
        times.append(time.perf_counter() - started)
        total = engine.total
        engine.close()
    return {"operations": total, "first_ms": _ms(times[0]), "median_ms": _ms(sorted(times)[2])}


def _warm_checkpoints(engine: Any) -> float:
    """Build the checkpoints in memory (a one-off for a session recorded without them)."""
    started = time.perf_counter()
    engine.checkpoints.floor(engine.total)
    return time.perf_counter() - started


def child_steps(path: Path) -> dict[str, Any]:
    engine = _open(path)
    rng = random.Random(1)
    build = _warm_checkpoints(engine)
    engine.goto(rng.randrange(engine.total // 4, engine.total // 2))
    engine.state()
    timings: dict[str, list[float]] = {"step": [], "back": [], "step_state": [], "back_state": []}
    clock = time.perf_counter
    for _ in range(2000):
        started = clock()
        engine.step()
        timings["step"].append(clock() - started)
    for _ in range(2000):
        started = clock()
        engine.back()
        timings["back"].append(clock() - started)
    for _ in range(2000):
        started = clock()
        engine.step()
        engine.state()
        timings["step_state"].append(clock() - started)
    for _ in range(2000):
        started = clock()
        engine.back()
        engine.state()
        timings["back_state"].append(clock() - started)
    report: dict[str, Any] = {"checkpoints_in_memory_s": round(build, 2)}
    for label, values in timings.items():
        report[label] = {"p50_ms": _ms(_percentile(values, 0.5)), "p99_ms": _ms(_percentile(values, 0.99))}
    report["peak_rss_mb"] = _peak_rss_mb()
    return report


def child_goto(path: Path) -> dict[str, Any]:
    engine = _open(path)
    build = _warm_checkpoints(engine)
    rng = random.Random(2)
    times = []
    for _ in range(300):
        seq = rng.randint(1, engine.total)
        started = time.perf_counter()
        engine.goto(seq)
        state = engine.state()
        times.append(time.perf_counter() - started)
        assert len(state) >= 0
    return {
        "checkpoints_in_memory_s": round(build, 2),
        "gotos": len(times),
        "p50_ms": _ms(_percentile(times, 0.5)),
        "p99_ms": _ms(_percentile(times, 0.99)),
        "max_ms": _ms(max(times)),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _run_through(engine: Any, breakpoint: Any, *, reverse: bool = False) -> dict[str, Any]:
    (status,) = engine.set_breakpoints([breakpoint])
    assert status.verified, status.message
    engine.goto(engine.total if reverse else 1)
    started = time.perf_counter()
    stop = engine.run(reverse=reverse)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "stop": stop.reason,
        "seq": stop.seq,
        "hits": engine.hit_count(status.id),
    }


def child_field_condition(path: Path) -> dict[str, Any]:
    from opreplay.replay import ConditionBreakpoint

    engine = _open(path)
    forwards = _run_through(engine, ConditionBreakpoint(FIELD_CONDITION))
    # backwards, each batch starts from the state before it: checkpoints (built once, apart)
    build = _warm_checkpoints(engine)
    backwards = _run_through(engine, ConditionBreakpoint(FIELD_CONDITION), reverse=True)
    helper = engine.screen_helper
    screened = helper.answered if helper is not None else 0
    engine.close()  # and its helper process, whose peak memory is then known
    return {
        "condition": FIELD_CONDITION,
        "forwards_s": forwards["seconds"],
        "backwards_s": backwards["seconds"],
        "checkpoints_in_memory_s": round(build, 2),
        "stops": [forwards["stop"], backwards["stop"]],
        "bodies_screened_by_helper": screened,
        "peak_rss_mb": _peak_rss_mb(),
        "helper_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }


def child_index_runs(path: Path) -> dict[str, Any]:
    from opreplay.replay import ConditionBreakpoint, ErrorBreakpoint, SelectorBreakpoint

    engine = _open(path)
    report: dict[str, Any] = {}
    for label, make in (
        ("selector", lambda **kw: SelectorBreakpoint(SELECTOR, **kw)),
        ("conflict", lambda **kw: ErrorBreakpoint("conflict", **kw)),
        ("indexed_condition", lambda **kw: ConditionBreakpoint(INDEXED_CONDITION, **kw)),
    ):
        first = _run_through(engine, make())
        last = _run_through(engine, make(), reverse=True)
        # with a hit condition that never fires, every candidate of the session is evaluated (and
        # counted) and the run goes to the end: the slowest an index-answered run can be
        whole = _run_through(engine, make(hit_condition=NEVER))
        engine.set_breakpoints([make()])
        engine.goto(1)
        nexts: list[float] = []
        for _ in range(200):
            started = time.perf_counter()
            stop = engine.run()
            nexts.append(time.perf_counter() - started)
            if stop.reason == "end":
                break
        report[label] = {
            "first_stop_s": first["seconds"],
            "first_stop_seq": first["seq"],
            "last_stop_backwards_s": last["seconds"],
            "last_stop_seq": last["seq"],
            "whole_session_s": whole["seconds"],
            "whole_session_hits": whole["hits"],
            "next_stop_p50_ms": _ms(_percentile(nexts, 0.5)),
            "next_stop_p99_ms": _ms(_percentile(nexts, 0.99)),
        }
    report["indexed_condition"]["condition"] = INDEXED_CONDITION
    report["peak_rss_mb"] = _peak_rss_mb()
    return report


def child_analysis(path: Path) -> dict[str, Any]:
    from opreplay.analysis import analyze
    from opreplay.store import Store

    with Store.open(path) as store:
        store.limit_read_memory()
        session = store.find_session("latest")
        started = time.perf_counter()
        analysis = analyze(store, session)
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "operations": analysis.stats.operations,
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_memory(path: Path) -> dict[str, Any]:
    """Open, jump around at random (state each time), then scan the whole session on object fields."""
    from opreplay.replay import ConditionBreakpoint

    engine = _open(path)
    rng = random.Random(3)
    for _ in range(300):
        engine.goto(rng.randint(1, engine.total))
        engine.state()
    after_gotos = _peak_rss_mb()
    engine.set_breakpoints([ConditionBreakpoint(FIELD_CONDITION)])
    engine.goto(1)
    engine.run()
    engine.run(reverse=True)
    return {"operations": engine.total, "after_gotos_mb": after_gotos, "peak_rss_mb": _peak_rss_mb()}


CHILDREN: dict[str, Callable[[Path], dict[str, Any]]] = {
    "open": child_open,
    "steps": child_steps,
    "goto": child_goto,
    "field_condition": child_field_condition,
    "index_runs": child_index_runs,
    "analysis": child_analysis,
    "memory": child_memory,
}


def _child(name: str, path: Path) -> dict[str, Any]:
    print(f"... {name} ({path.name})", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, "--database", str(path)],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": f"child exited with {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout)
    result["child_wall_s"] = round(time.perf_counter() - started, 1)
    return result


# -- the report -------------------------------------------------------------------------------------


def ensure_database(path: Path, operations: int) -> None:
    if path.exists():
        return
    import workload

    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"... generating {operations:,} operations into {path}", file=sys.stderr, flush=True)
    workload.generate_session(path, operations)


def report_for(path: Path) -> dict[str, Any]:
    results = {name: _child(name, path) for name in CHILDREN}
    opened, steps, goto = results["open"], results["steps"], results["goto"]
    field, index, analysis, memory = (
        results["field_condition"],
        results["index_runs"],
        results["analysis"],
        results["memory"],
    )
    checks: dict[str, Any] = {}
    if "error" not in opened:
        checks["open_ms"] = _check(opened["first_ms"], TARGETS["open_ms"])
    if "error" not in steps:
        checks["step_p99_ms"] = _check(steps["step_state"]["p99_ms"], TARGETS["step_p99_ms"])
        checks["back_p99_ms"] = _check(steps["back_state"]["p99_ms"], TARGETS["step_p99_ms"])
    if "error" not in goto:
        checks["goto_state_p99_ms"] = _check(goto["p99_ms"], TARGETS["goto_state_p99_ms"])
    if "error" not in field:
        checks["field_condition_run_s"] = _check(field["forwards_s"], TARGETS["field_condition_run_s"])
        checks["field_condition_run_backwards_s"] = _check(
            field["backwards_s"], TARGETS["field_condition_run_s"]
        )
    if "error" not in index:
        for label in ("selector", "conflict", "indexed_condition"):
            measured = index[label]
            checks[f"{label}_run_s"] = _check(
                max(measured["first_stop_s"], measured["last_stop_backwards_s"]), TARGETS["index_run_s"]
            )
            checks[f"{label}_whole_session_s"] = _check(measured["whole_session_s"], TARGETS["index_run_s"])
    if "error" not in analysis:
        checks["analysis_s"] = _check(analysis["seconds"], TARGETS["analysis_s"])
    if "error" not in memory:
        checks["peak_rss_mb"] = _check(memory["peak_rss_mb"], TARGETS["peak_rss_mb"])
    return {"database": str(path), "measurements": results, "checks": checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", type=Path, default=DEFAULT_DATABASE)
    parser.add_argument("--operations", type=int, default=1_000_000, help="when generating --database")
    parser.add_argument("--compare-database", type=Path, help="a longer session: memory must not grow")
    parser.add_argument(
        "--three-million", action="store_true", help=f"compare with {THREE_MILLION} (generated if missing)"
    )
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.database)))
        return
    ensure_database(args.database, args.operations)
    compare: Path | None = args.compare_database
    if args.three_million:
        compare = THREE_MILLION
        ensure_database(compare, 3_000_000)
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "targets": TARGETS,
    }
    report["session"] = report_for(args.database)
    if compare is not None:
        other = report_for(compare)
        report["compare"] = other
        base = report["session"]["measurements"]["memory"].get("peak_rss_mb")
        longer = other["measurements"]["memory"].get("peak_rss_mb")
        if base and longer:
            growth = round(longer / base - 1, 3)
            report["memory_growth"] = {
                "operations": [
                    report["session"]["measurements"]["memory"].get("operations"),
                    other["measurements"]["memory"].get("operations"),
                ],
                "peak_rss_mb": [base, longer],
                **_check(growth, TARGETS["rss_growth_3m"]),
            }
    report["machine"]["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
