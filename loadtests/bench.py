"""The benchmark: how close the gateway is to its server stack and to the bank, as ratios measured in one run.

    .venv/bin/python loadtests/bench.py [--quick] [--stages] [--profile] [--out loadtests/results/bench]

It starts its own Redis, sandbox bank and gateway (under a temporary directory, with a fresh dev PKI), obtains one
consent by driving the real consent pages (the e2e tests' Authlib TPP), and loads five variants with the same load
generator (`loadgen.py`) and settings, one after the other:

    a  direct calls to the sandbox bank (plain HTTP, the customer header set by hand)
    b  a bare pass-through proxy: the gateway's server stack (uvicorn, mutual TLS, aiohttp pool), no stages
    c  the full gateway (`obgw serve`): mTLS, token, consent, rate limit, minimisation, audit; 1 worker
    d  the same with 2 workers
    e  the same as c behind an edge (edge.py): nginx (Debian, with njs; else HAProxy) terminates mutual TLS and
       forwards the verified certificate as RFC 9440 `Client-Cert` over kept-alive HTTP/1.1 to the gateway listening
       on plain HTTP on loopback (OBGW_PLAIN_HTTP); skipped, saying so, when neither is installed (under CI=true
       that is an error)

Each is loaded closed-loop (throughput, latency under saturation), then a and c at a fixed moderate rate (the added
p50). The CPU time every process spent (from /proc) is divided by the requests served, so the table says where each
request's cost goes, and that the load generator is not what saturates. Audit records written during c, d and e are
counted against the requests sent (`lost_audit_records`). Prints a table; writes `<out>.json` and `<out>.png`.
With `--stages` or `--profile`, py-spy samples the busiest worker of c during its measured run: `--stages` prints
the worker's CPU per call shared out over the stages, middleware, audit and server stack (stage_budget.py; the
`stages` key of the JSON; `stages_e` the same for e's gateway worker), `--profile` the functions it spent its samples
in (`<out>-profile.txt`). py-spy runs on the same cores, so read c's throughput from a run without either.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "loadtests")]

import httpx  # noqa: E402
import loadgen  # noqa: E402
import stage_budget  # noqa: E402
from edge import INSTALL, find_edge  # noqa: E402
from stack import ROOT, Stack, free_port  # noqa: E402
from support.tpp import CUSTOMER_PRESENT, Tpp  # noqa: E402

from gateway.store.clients import ClientStore  # noqa: E402
from gateway.store.redis import sync_client  # noqa: E402

AISP = "/open-banking/v3.1/aisp"
PERMISSIONS = ["ReadAccountsDetail", "ReadBalances"]
TPP = "tpp-demo"
NAMES = {"a": "direct bank", "b": "bare proxy", "c": "gateway, 1 worker", "d": "gateway, 2 workers",
         "e": "edge + gateway, 1 worker"}
SAMPLE_HZ = 250  # py-spy's rate: ~700 samples in a quick run's 3 s, for ~0.08 of a core (500 Hz: ~0.16)


@dataclass(frozen=True)
class Load:
    duration: float       # seconds of closed-loop load per variant
    warmup: float         # seconds of load before each measured run (connections, caches, JIT-free Python warm)
    connections: int
    moderate_rate: float  # requests/s for the added-latency runs
    moderate_seconds: float


FULL = Load(duration=10, warmup=2, connections=32, moderate_rate=200, moderate_seconds=8)
QUICK = Load(duration=3, warmup=1, connections=32, moderate_rate=200, moderate_seconds=3)


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process and all its descendants still alive (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry)] = fields
                children.setdefault(int(fields[1]), []).append(int(entry))
    user = system = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            user += int(stats[current][11]) / ticks
            system += int(stats[current][12]) / ticks
        todo.extend(children.get(current, ()))
    return user, system


def prepare(stack: Stack) -> tuple[str, list[str], str]:
    """tpp-demo on the unlimited tier (the benchmark measures the stages, not the limit), then the real flow once
    (consent, PAR, login, approve, token) through a gateway: the access token, the accounts the customer chose,
    and the bank's customer id for them (what the gateway tells the bank for this consent)."""
    client = sync_client(stack.redis_url)
    try:
        ClientStore(client).set_tier(TPP, "unlimited")
    finally:
        client.close()
    gateway = stack.gateway(1)
    tpp = Tpp(stack.base, stack.pki, TPP)
    try:
        token = tpp.consent_token(PERMISSIONS)["access_token"]
        listed = tpp.get(f"{AISP}/accounts", token)
        listed.raise_for_status()
    finally:
        tpp.close()
        gateway.stop()
    answer = httpx.post(stack.accounts_url + "/internal/authenticate",
                        json={"username": "alice", "password": "alice-pass"})
    answer.raise_for_status()
    return token, sorted(a["AccountId"] for a in listed.json()["Data"]["Account"]), answer.json()["customer_id"]


def requests_for(host: str, accounts: list[str], headers: dict[str, str]) -> tuple[bytes, ...]:
    """The mix every variant is loaded with: the account list, one account, its balances."""
    first = accounts[0]
    paths = [f"{AISP}/accounts?account_ids={','.join(accounts)}", f"{AISP}/accounts/{first}",
             f"{AISP}/accounts/{first}/balances"]
    return tuple(loadgen.build_request("GET", path, host, headers) for path in paths)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))]


def summarise(result: loadgen.Result, cpu: dict[str, tuple[float, float]]) -> dict:
    """Throughput, latency percentiles, and each process's CPU per answered request (in the kernel: `sys`)."""
    latencies = sorted(result.latencies)
    answered = len(latencies)
    per_request = max(answered, 1) / 1e6
    return {
        "requests": result.sent, "answered": answered, "errors": dict(result.errors), "statuses": dict(result.statuses),
        "rps": round(answered / result.wall_seconds, 1),
        **{f"p{q}_ms": round(percentile(latencies, q) * 1000, 3) for q in (50, 90, 99)},
        "cpu_us_per_request": {name: round((user + system) / per_request, 1) for name, (user, system) in cpu.items()},
        "sys_us_per_request": {name: round(system / per_request, 1) for name, (_, system) in cpu.items()},
        "cpu_busy_cores": round(sum(user + system for user, system in cpu.values()) / result.wall_seconds, 2),
        "latency_ms_percentiles": [round(percentile(latencies, q / 10) * 1000, 3) for q in range(0, 1000)],
    }


def measure(target: loadgen.Target, load: Load, pids: dict[str, int], *, rate: float | None = None,
            during=contextlib.nullcontext) -> dict:
    """Warm up, then one measured run (inside `during()`); CPU per process taken around the measured run only."""
    sent = asyncio.run(loadgen.run(target, connections=load.connections, duration=load.warmup)).sent
    before = {name: cpu_times(pid) for name, pid in pids.items()}
    with during():
        if rate is None:
            result = asyncio.run(loadgen.run(target, connections=load.connections, duration=load.duration))
        else:
            result = asyncio.run(loadgen.run(target, connections=8, duration=load.moderate_seconds, rate=rate))
    cpu = {name: tuple(now - then for now, then in zip(cpu_times(pid), before[name])) for name, pid in pids.items()}
    cpu["loadgen"] = (result.cpu_seconds - result.sys_seconds, result.sys_seconds)
    summary = summarise(result, cpu)
    summary["sent_with_warmup"] = sent + result.sent
    return summary


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError, IndexError):
            if entry.isdigit() and int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


@dataclass
class Sampled:
    """What sampling a variant's worker gave: py-spy's raw stacks and what it said, and the CPU the worker and py-spy
    used meanwhile."""
    raw: Path
    worker_cpu_seconds: float = 0.0
    profiler_cpu_seconds: float = 0.0
    output: str = ""


def profiler(gateway_pid: int, seconds: float, sampled: Sampled):
    """A context that samples the gateway's busiest worker with py-spy for `seconds` (stage_budget.py says why these
    flags) and measures that worker's CPU time over the context (/proc)."""
    @contextlib.contextmanager
    def sampling():
        worker = max(children(gateway_pid), key=lambda pid: sum(cpu_times(pid)))
        before = sum(cpu_times(worker))
        spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(worker), "-d",
                                str(max(1, int(seconds) - 1)), "-r", str(SAMPLE_HZ), "-f", "raw", "-o",
                                str(sampled.raw), "--nonblocking"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        assert spy.stdout is not None  # stdout=PIPE
        sampled.output = spy.stdout.readline()  # "py-spy> Sampling process ...": attached (or why not)
        try:
            yield
        finally:
            sampled.worker_cpu_seconds = sum(cpu_times(worker)) - before
            reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
            sampled.output += spy.communicate(timeout=seconds + 30)[0]
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # py-spy is the only child reaped meanwhile
            sampled.profiler_cpu_seconds = after.ru_utime + after.ru_stime - reaped.ru_utime - reaped.ru_stime
    return sampling


def profile_summary(collapsed: Path, top: int = 25) -> str:
    """The functions a worker spent its samples in (self), and the gateway's own functions with what they called
    (inclusive, where py-spy could walk the coroutine's stack), as shares of all samples."""
    own, inclusive, total = Counter(), Counter(), 0
    for line in collapsed.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0] + ")" for frame in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            if "(gateway/" in frame:
                inclusive[frame] += int(count)
    lines = [f"{total} samples of the busiest worker during variant c", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["gateway functions, inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def stages(sampled: Sampled, answered: int, seconds: float) -> dict:
    """The CPU budget per stage of a sampled worker (stage_budget.py), with what sampling it cost."""
    raw = sampled.raw.read_text() if sampled.raw.exists() else ""
    if not raw.strip():
        raise SystemExit(f"bench: py-spy sampled nothing of the worker: {sampled.output.strip()}")
    return stage_budget.budget(raw, sampled.worker_cpu_seconds * 1e6 / answered, sample_hz=SAMPLE_HZ,
                               profiler_cpu_cores=round(sampled.profiler_cpu_seconds / seconds, 3))


def run(load: Load, work: Path, sampled: dict[str, Sampled]) -> dict:
    results: dict[str, dict] = {}
    moderate: dict[str, dict] = {}
    audit: dict[str, dict] = {}
    edge = find_edge()
    with Stack(work) as stack:
        host = f"127.0.0.1:{stack.port}"
        base_pids = {"bank": stack.bank_pid, "redis": stack.redis.pid}

        def gateway_variant(name: str, start: Callable[[contextlib.ExitStack], dict[str, int]], token: str,
                            accounts: list[str]) -> None:
            """Load the gateway `start` runs (it returns the pids it started) on the stack's port."""
            since = datetime.now(timezone.utc)
            with contextlib.ExitStack() as running:
                pids = {**base_pids, **start(running)}
                target = loadgen.Target("127.0.0.1", stack.port, requests_for(
                    host, accounts, {"authorization": f"Bearer {token}", **CUSTOMER_PRESENT}), stack.tls(TPP))
                during = profiler(pids["gateway"], load.duration, sampled[name]) if name in sampled \
                    else contextlib.nullcontext
                results[name] = measure(target, load, pids, during=during)
                sent = results[name]["sent_with_warmup"]
                if name == "c":
                    moderate["c"] = measure(target, load, pids, rate=load.moderate_rate)
                    sent += moderate["c"]["sent_with_warmup"]
            time.sleep(1.1)  # records land with millisecond stream ids: leave the window's edge behind
            audit[name] = {"sent": sent, "records": len(stack.audit_records(since, datetime.now(timezone.utc)))}

        def gateway(workers: int) -> Callable[[contextlib.ExitStack], dict[str, int]]:
            def start(running: contextlib.ExitStack) -> dict[str, int]:
                server = stack.gateway(workers)
                running.callback(server.stop)
                return {"gateway": server.process.pid}
            return start

        def behind_edge(running: contextlib.ExitStack) -> dict[str, int]:
            assert edge is not None
            kind, binary = edge
            upstream = free_port()
            server = stack.gateway_behind_edge(upstream)
            running.callback(server.stop)
            front = running.enter_context(kind(binary, stack.work / "edge", stack.port, upstream, stack.pki))
            assert front.process is not None
            return {"gateway": server.process.pid, "edge": front.process.pid}

        token, accounts, customer = prepare(stack)
        time.sleep(1.1)

        bank_host = stack.accounts_url.removeprefix("http://")
        bank_requests = requests_for(bank_host, accounts, {"x-bank-customer-id": customer})
        bank_address, bank_port = bank_host.rsplit(":", 1)
        direct = loadgen.Target(bank_address, int(bank_port), bank_requests)
        results["a"] = measure(direct, load, base_pids)
        moderate["a"] = measure(direct, load, base_pids, rate=load.moderate_rate)

        proxy = stack.process([str(ROOT / "loadtests" / "bare_proxy.py")], "bare.log",
                              BENCH_UPSTREAM=stack.accounts_url)
        try:
            bare = loadgen.Target("127.0.0.1", stack.port, requests_for(
                host, accounts, {"x-bank-customer-id": customer}), stack.tls(TPP))
            results["b"] = measure(bare, load, {**base_pids, "proxy": proxy.process.pid})
        finally:
            proxy.stop()

        gateway_variant("c", gateway(1), token, accounts)
        gateway_variant("d", gateway(2), token, accounts)
        if edge is not None:
            gateway_variant("e", behind_edge, token, accounts)

    def ratio(x: str, y: str) -> float:
        return round(results[x]["rps"] / results[y]["rps"], 3)

    def gateway_cpu(key: str) -> float:
        return results[key]["cpu_us_per_request"]["gateway"]

    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load": load.__dict__,
        "variants": {k: {"name": NAMES[k], **results[k]} for k in "abcde" if k in results},
        "moderate": {k: {"rate": load.moderate_rate, **v} for k, v in moderate.items()},
        "c_over_b": ratio("c", "b"), "c_over_a": ratio("c", "a"), "d_over_c": ratio("d", "c"),
        "e_over_c": ratio("e", "c") if "e" in results else None,
        "edge": edge[0].name if edge else f"none installed: {INSTALL}",
        # d/c with a core per worker and the rest elsewhere: 2 x (a request's gateway CPU in c / in d), measured.
        "d_over_c_one_core_per_worker": round(2 * gateway_cpu("c") / gateway_cpu("d"), 3),
        "added_p50_ms": round(moderate["c"]["p50_ms"] - moderate["a"]["p50_ms"], 3),
        "audit": audit,
        "lost_audit_records": sum(max(0, a["sent"] - a["records"]) for a in audit.values()),
    }


def table(report: dict) -> str:
    components = ("loadgen", "bank", "redis", "proxy", "edge", "gateway")
    lines = ["| variant | req/s | p50 ms | p90 ms | p99 ms | errors | CPU cores busy | CPU µs per request: "
             + " / ".join(components) + " (of it in the kernel) |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for key, v in report["variants"].items():
        cpu = " / ".join(f"{v['cpu_us_per_request'][c]:.0f} ({v['sys_us_per_request'][c]:.0f})"
                         if c in v["cpu_us_per_request"] else "-" for c in components)
        lines.append(f"| {key} {v['name']} | {v['rps']:.0f} | {v['p50_ms']:.2f} | {v['p90_ms']:.2f} | "
                     f"{v['p99_ms']:.2f} | {sum(v['errors'].values())} | {v['cpu_busy_cores']:.2f} | {cpu} |")
    m = report["moderate"]
    e_over_c = "-" if report["e_over_c"] is None else f"{report['e_over_c']:.2f}"
    lines += ["", f"c/b {report['c_over_b']:.2f}   c/a {report['c_over_a']:.2f}   d/c {report['d_over_c']:.2f} "
              f"(one core per worker: {report['d_over_c_one_core_per_worker']:.2f})   e/c {e_over_c} "
              f"(edge: {report['edge']})   "
              f"added p50 at {m['c']['rate']:.0f} req/s: {report['added_p50_ms']:.2f} ms "
              f"(a {m['a']['p50_ms']:.2f} ms, c {m['c']['p50_ms']:.2f} ms)   "
              f"lost audit records: {report['lost_audit_records']}"]
    return "\n".join(lines)


def chart(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    quantiles = [q / 10 for q in range(0, 1000)]
    colour = dict(zip("abcde", ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")))  # one per variant
    for key, v in report["variants"].items():
        left.plot(quantiles, v["latency_ms_percentiles"], colour[key],
                  label=f"{key}: {v['name']} ({v['rps']:.0f} req/s)")
    left.set(title="Closed loop: latency by percentile", xlabel="percentile", ylabel="ms", yscale="log")
    for key, v in report["moderate"].items():
        right.plot(quantiles, v["latency_ms_percentiles"], colour[key],
                   label=f"{key}: {report['variants'][key]['name']}")
    right.set(title=f"At {report['load']['moderate_rate']:.0f} req/s: latency by percentile", xlabel="percentile",
              ylabel="ms", yscale="log")
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per variant instead of 10 (under a minute)")
    parser.add_argument("--duration", type=float, help="seconds of closed-loop load per variant")
    parser.add_argument("--profile", action="store_true",
                        help="sample variant c's worker with py-spy; print the profile, write <out>-profile.txt")
    parser.add_argument("--stages", action="store_true",
                        help="sample the workers of variants c and e with py-spy; print their CPU per call by stage, "
                             "middleware, audit and server stack (the JSON's `stages`, `stages_e`)")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "results" / "bench",
                        help="path prefix of the JSON and PNG written (default loadtests/results/bench)")
    args = parser.parse_args(argv)
    load = QUICK if args.quick else FULL
    if args.duration is not None:
        load = Load(**{**load.__dict__, "duration": args.duration, "warmup": min(load.warmup, args.duration),
                       "moderate_seconds": args.duration})
    if find_edge() is None:
        missing = f"variant e needs an edge: neither nginx with njs nor haproxy is installed ({INSTALL})"
        if os.environ.get("CI") == "true":
            parser.error(missing)
        print(f"{missing}: skipping it", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="obgw-bench-") as work:
        sampled = {name: Sampled(Path(work) / f"profile-{name}.raw")
                   for name in ("c", "e") if args.stages or (args.profile and name == "c")}
        report = run(load, Path(work), sampled)
        if args.profile:
            summary = profile_summary(sampled["c"].raw)
            Path(f"{args.out}-profile.txt").write_text(summary + "\n")
            print(summary + "\n")
        if args.stages:
            for name, key in (("c", "stages"), ("e", "stages_e")):
                if name in report["variants"]:
                    report[key] = stages(sampled[name], report["variants"][name]["answered"], load.duration)
                    print(stage_budget.table(report[key], name) + "\n")
    json_path, png_path = Path(f"{args.out}.json"), Path(f"{args.out}.png")
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    chart(report, png_path)
    print(table(report))
    print(f"\nwrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
