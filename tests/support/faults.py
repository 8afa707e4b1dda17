"""Fault injection for the fault tests: processes killed (SIGKILL), frozen (SIGSTOP) and brought back on the same
address, and which gateway worker process answered a given connection.

    redis = KillableRedis(tmp_path / "redis"); redis.start(); ...; redis.kill(); redis.start()
    bank = Sandbox(state_file=...); bank.start(); bank.pause(); bank.resume(); bank.kill(); bank.start()
    answer = call(gw, context, "GET", ACCOUNTS, token)   # a fresh connection; answer.worker is the pid that served it

Every wait here is bounded; every process started here is stopped by its owner's `stop()`.
"""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from support.ports import free_port
from support.processes import Process, python
from support.redis_server import RedisServer

CUSTOMER_PRESENT = {"x-fapi-customer-ip-address": "198.51.100.7"}


class KillableRedis(RedisServer):
    """A RedisServer that can also crash: `kill()` is SIGKILL, so nothing is flushed on the way out (the append-only
    file is fsynced on every write, so what Redis acknowledged is on disk). `start()` brings it back on its port."""

    def kill(self) -> None:
        process = self._process
        if process is not None:
            process.kill()
            process.wait(timeout=10)
            self._process = None


class Sandbox:
    """The sandbox bank (`python -m gateway.sandbox`) on ports it keeps across restarts, so the gateway's configured
    URLs stay right: `kill()` (SIGKILL), `pause()` (SIGSTOP: it accepts connections and never answers), `resume()`."""

    def __init__(self, state_file: Path | None = None) -> None:
        self.accounts_port, self.payments_port = free_port(), free_port()
        self.accounts_url = f"http://127.0.0.1:{self.accounts_port}"
        self.payments_url = f"http://127.0.0.1:{self.payments_port}"
        self.state_file = state_file
        self.process: Process | None = None
        self._paused = False

    @property
    def urls(self) -> tuple[str, str]:
        return self.accounts_url, self.payments_url

    def start(self) -> None:
        args = ["-m", "gateway.sandbox", "--accounts-port", str(self.accounts_port),
                "--payments-port", str(self.payments_port)]
        if self.state_file is not None:
            args += ["--state-file", str(self.state_file)]
        self.process = Process(python(*args))
        self.process.wait_for_line("sandbox bank:", timeout=30)

    def pause(self) -> None:
        os.kill(self.process.popen.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self._paused and self.process is not None:
            os.kill(self.process.popen.pid, signal.SIGCONT)
        self._paused = False

    def kill(self) -> None:
        self.resume()
        if self.process is not None:
            self.process.stop(sig=signal.SIGKILL)
            self.process = None

    def stop(self) -> None:
        self.resume()
        if self.process is not None:
            self.process.stop()
            self.process = None

    def payments_made(self) -> list[dict]:
        """The bank's own ledger: every payment it made (needs `state_file`)."""
        if self.state_file is None or not self.state_file.exists():
            return []
        return [json.loads(line) for line in self.state_file.read_text().splitlines() if line.strip()]


def wait_until(condition: Callable[[], object], seconds: float, what: str):
    """Poll `condition` until it returns something truthy (returned), for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {seconds} s")


# --- which worker ---------------------------------------------------------------------------------------------------

def workers(gateway) -> set[int]:
    """The live worker processes of a running `gateway serve` (uvicorn's spawned children; a killed one that is not
    reaped yet is not counted)."""
    found = set()
    try:
        children = psutil.Process(gateway.process.popen.pid).children()
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def worker_serving(gateway, client_port: int) -> int | None:
    """The worker whose end of the TCP connection from local port `client_port` is open."""
    for pid in workers(gateway):
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        for c in connections:
            if c.laddr and c.laddr.port == gateway.port and c.raddr and c.raddr.port == client_port:
                return pid
    return None


def worker_holding(pids: Iterable[int], remote_port: int, local_port: int) -> int | None:
    """The process among `pids` with a TCP connection from `local_port` to `remote_port` (e.g. a worker's pooled
    connection to a back-end)."""
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        for c in connections:
            if c.laddr and c.laddr.port == local_port and c.raddr and c.raddr.port == remote_port:
                return pid
    return None


def wait_for_workers(gateway, count: int, gone: Iterable[int] = (), timeout: float = 30) -> set[int]:
    """Wait until `count` workers live and none of them is one of `gone`; returns them."""
    gone = set(gone)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = workers(gateway)
        if len(live) == count and not live & gone:
            return live
        time.sleep(0.1)
    raise AssertionError(f"workers are {workers(gateway)}, wanted {count} without {gone}")


def chain_pid(chain_id: str) -> int | None:
    """The worker pid in an audit chain id (`<host>-<pid>-<hex>`)."""
    match = re.search(r"-(\d+)-[0-9a-f]+$", chain_id or "")
    return int(match.group(1)) if match else None


# --- calls ----------------------------------------------------------------------------------------------------------

@dataclass
class Answer:
    """One call as the TPP saw it: the answer or the transport error, and the worker that served the connection."""
    interaction_id: str
    response: httpx.Response | None
    error: Exception | None
    worker: int | None
    started: float
    ended: float

    @property
    def status(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def error_code(self) -> str | None:
        try:
            return self.response.json()["Errors"][0]["ErrorCode"]
        except Exception:
            return None


def _client_port(response: httpx.Response) -> int | None:
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    address = stream.get_extra_info("client_addr")
    return address[1] if address else None


def call(gateway, context, method: str, path: str, token: str | None = None, *, client: httpx.Client | None = None,
         headers: dict | None = None, timeout: float = 15, find_worker: bool = True, **kwargs) -> Answer:
    """One call with its own `x-fapi-interaction-id`, on a fresh connection unless `client` is given (a kept-alive
    one). Transport errors are returned, not raised."""
    interaction_id = str(uuid.uuid4())
    sent = {"x-fapi-interaction-id": interaction_id, **CUSTOMER_PRESENT, **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    own = client is None
    http = client or httpx.Client(verify=context, timeout=timeout)
    started = time.monotonic()
    try:
        response = http.request(method, gateway.base + path, headers=sent, **kwargs)
    except httpx.TransportError as exc:
        if own:
            http.close()
        return Answer(interaction_id, None, exc, None, started, time.monotonic())
    ended = time.monotonic()
    try:
        port = _client_port(response) if find_worker else None
        worker = worker_serving(gateway, port) if port else None
    finally:
        if own:
            http.close()
    return Answer(interaction_id, response, None, worker, started, ended)


def until_every_worker(make_call: Callable[[], Answer], pids: set[int], ok: Callable[[Answer], bool],
                       each: int = 1, max_calls: int = 40, seconds: float = 20, pause: float = 0.05) -> list[Answer]:
    """Fresh-connection calls until every worker in `pids` has given `each` answers that are `ok`, within
    `max_calls` calls and `seconds`; returns every call made. Fails naming what each worker answered."""
    answers: list[Answer] = []
    good: Counter = Counter()
    deadline = time.monotonic() + seconds
    while len(answers) < max_calls and time.monotonic() < deadline:
        answer = make_call()
        answers.append(answer)
        if answer.worker in pids and ok(answer):
            good[answer.worker] += 1
        if all(good[pid] >= each for pid in pids):
            return answers
        time.sleep(pause)
    seen = Counter((a.worker, a.status) for a in answers)
    raise AssertionError(f"not every worker of {pids} answered well {each} time(s): {dict(seen)}")


def records_by_interaction(gateway, interaction_ids: Iterable[str], seconds: float = 20) -> dict[str, list[dict]]:
    """The audit records (`obgw audit search --json`) of each interaction id, waiting (bounded) until every one has
    at least one: records spooled during an outage reach Redis a little after it returns."""
    wanted = set(interaction_ids)
    deadline = time.monotonic() + seconds
    while True:
        found: dict[str, list[dict]] = {i: [] for i in wanted}
        for record in gateway.audit():
            if record["interaction_id"] in found:
                found[record["interaction_id"]].append(record)
        missing = [i for i, records in found.items() if not records]
        if not missing or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


class Load:
    """`threads` callers each making `make_call()` in a loop, at most `max_calls` each and for at most `seconds`,
    until the `with` block ends; `answers` is every call made so far, in the order they ended.

        with Load(lambda: call(gw, context, "GET", ACCOUNTS, token)) as load:
            load.wait_for(lambda answers: len(answers) >= 10)
    """

    def __init__(self, make_call: Callable[[], Answer], threads: int = 3, max_calls: int = 150,
                 seconds: float = 60, pause: float = 0.02) -> None:
        self._make_call, self._max_calls, self._pause = make_call, max_calls, pause
        self._deadline = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._answers: list[Answer] = []
        self._errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        try:
            for _ in range(self._max_calls):
                if self._stop.is_set() or time.monotonic() > self._deadline:
                    return
                answer = self._make_call()
                with self._lock:
                    self._answers.append(answer)
                self._stop.wait(self._pause)
        except BaseException as exc:
            self._errors.append(exc)

    @property
    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    def wait_for(self, condition: Callable[[list[Answer]], bool], seconds: float = 20, what: str = "") -> None:
        deadline = time.monotonic() + seconds
        while not condition(self.answers):
            if time.monotonic() > deadline or not any(t.is_alive() for t in self._threads):
                statuses = Counter(a.status for a in self.answers)
                raise AssertionError(f"load: {what or 'condition'} not met in {seconds} s; answers so far: "
                                     f"{dict(statuses)}; errors: {self._errors}")
            time.sleep(0.05)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "a load thread did not stop"
        if exc_info[0] is None:
            assert not self._errors, self._errors
