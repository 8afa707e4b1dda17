"""The CPU budget per stage: a gateway worker's py-spy samples, each given to exactly one row, scaled to µs per call.

Each sample's stack is walked from its innermost frame outwards; the first frame that names a part of the request
path takes the sample:
- a module of the server stack (`SERVER`): the HTTP server (uvicorn's protocol, httptools, h11, the gateway's
  `ClientCertProtocol`), TLS (`ssl`), the forwarding client (pipeline/upstream.py; aiohttp before it), Starlette's
  routing;
- a stage hook, `X.on_request|on_response|on_abort` (closures inside it too): `stage X`;
- the audit chain and its spool (gateway/audit/chain.py, spool.py): `audit X`, X its class or function;
- an ASGI `__call__` (closures inside it too): `middleware X` in gateway/pipeline/middleware.py, `app X` in
  `ASGI_APPS` (the endpoint that runs the pipeline); other callables (a Redis script) stay their caller's.
Innermost wins, so the exchange Forward starts is the forwarding client's row and the uvicorn `send` a middleware
calls is the HTTP server's; what a stage does through a library not named here (redis-py for Admit's round trip,
cryptography for the token) stays the stage's. A stack with none of these but the event loop's own frames
(asyncio, uvicorn's `Server.run` calling into uvloop: scheduling, polling, socket reads and writes) is
`server event loop`; anything else (another thread, such as the ping thread of uvicorn's supervisor) is `other`.
Rows are named by class, never by line, so runs compare.

What Python frames cannot show: uvloop's transports are C, so a response's TLS encryption and `send` system call
count under uvicorn's `RequestResponseCycle.send` (the HTTP server row), an upstream request's under the forwarding
client's write, and socket reads the loop does itself under the event loop; `server TLS` holds what goes through
`ssl.py` (decrypting requests).

The samples come from `py-spy record --format raw --nonblocking`, without `--gil` or `--idle`: a sample is taken
whenever a thread is running (the kernel says so), GIL held or not, so the samples are a picture of the CPU time
/proc counts (system calls included); idle samples (the loop waiting in epoll) are left out, as /proc leaves them
out. `--nonblocking` reads the worker without pausing it: pausing it at every sample would add the pauses to the
very CPU time being divided up (the price: now and then a torn stack, one sample misplaced).
"""
from __future__ import annotations

from collections import Counter

HOOKS = frozenset({"on_request", "on_response", "on_abort"})
CALL = frozenset({"__call__"})
# (row, paths as py-spy shows them): a path ending in "/" is a package, else one module.
SERVER = (
    ("server TLS", ("ssl.py", "asyncio/sslproto.py")),
    ("server HTTP (uvicorn, httptools)", ("uvicorn/protocols/", "httptools/", "h11/", "gateway/server.py")),
    ("server forwarding client", ("gateway/pipeline/upstream.py", "aiohttp/", "yarl/", "multidict/",
                                  "aiohappyeyeballs/", "propcache/")),
    ("server starlette routing", ("starlette/",)),
)
LOOP = ("asyncio/", "uvloop/", "selectors.py")  # uvicorn runs uvloop through asyncio.run
AUDIT = ("gateway/audit/chain.py", "gateway/audit/spool.py")
MIDDLEWARE = "gateway/pipeline/middleware.py"
ASGI_APPS = ("gateway/pipeline/endpoint.py", "gateway/app.py")  # the ASGI apps behind the middleware
EVENT_LOOP, OTHER = "server event loop", "other"
KIND_ORDER = ("server", "middleware", "app", "stage", "audit", "other")


def _in(file: str, paths: tuple[str, ...]) -> bool:
    where = "/" + file
    return any(("/" + path) in where if path.endswith("/") else where.endswith("/" + path) for path in paths)


def _before(parts: list[str], names: frozenset[str]) -> str | None:
    """The class named just before the first of `names` in a qualified name (`Forward.on_request.<locals>.f`)."""
    for at, part in enumerate(parts[1:], 1):
        if part in names:
            return parts[at - 1]
    return None


def row_of(frame: tuple[str, str]) -> str | None:
    """The row one frame (qualified name, file) names, or None when it names none."""
    qualname, file = frame
    for row, paths in SERVER:
        if _in(file, paths):
            return row
    parts = qualname.split(".")
    if (stage := _before(parts, HOOKS)) is not None:
        return f"stage {stage}"
    if _in(file, AUDIT):
        return f"audit {parts[0]}"
    if (app := _before(parts, CALL)) is not None:
        if _in(file, (MIDDLEWARE,)):
            return f"middleware {app}"
        if _in(file, ASGI_APPS):
            return f"app {app}"
    return None


def classify(stack: list[tuple[str, str]]) -> str:
    """The row of a sample: its innermost frame that names one, else the event loop's, else `other`."""
    for frame in reversed(stack):
        if (row := row_of(frame)) is not None:
            return row
    return EVENT_LOOP if any(_in(file, LOOP) for _, file in stack) else OTHER


def parse(raw: str) -> Counter[str]:
    """Samples per row from py-spy's raw output (`frame;frame;... count`, a frame `qualname (file:line)`)."""
    rows: Counter[str] = Counter()
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        frames = []
        for frame in stack.split(";"):
            qualname, _, where = frame.rpartition(" (")
            frames.append((qualname, where.rsplit(":", 1)[0]))
        rows[classify(frames)] += int(count)
    return rows


def apportion(counts: Counter[str], total: float) -> dict[str, float]:
    """`total` shared out by `counts`, to 0.1, rounded so that the shares still add up to it (largest remainder)."""
    tenths, samples = round(total * 10), sum(counts.values())
    exact = {name: tenths * n / samples for name, n in counts.items()}
    shares = {name: int(value) for name, value in exact.items()}
    for name in sorted(exact, key=lambda k: exact[k] - shares[k], reverse=True)[:tenths - sum(shares.values())]:
        shares[name] += 1
    return {name: share / 10 for name, share in shares.items()}


def budget(raw: str, cpu_us_per_call: float, **measured: float) -> dict:
    """The `stages` section of the report, from py-spy's raw output (at least one sample): every row's samples and µs
    of CPU per call, adding up to the worker's."""
    counts = parse(raw)
    shares = apportion(counts, cpu_us_per_call)

    def order(name: str) -> tuple[int, float]:
        kind = name.split(" ", 1)[0]
        return KIND_ORDER.index(kind if kind in KIND_ORDER else "other"), -counts[name]

    return {"cpu_us_per_call": round(cpu_us_per_call, 1), "samples": sum(counts.values()), **measured,
            "rows": [{"name": name, "samples": counts[name], "us_per_call": shares[name]}
                     for name in sorted(counts, key=order)]}


def table(stages: dict, variant: str) -> str:
    total = stages["samples"]
    lines = [f"CPU budget of variant {variant}'s gateway worker: {stages['cpu_us_per_call']:.1f} µs per call, "
             f"{total} samples",
             "| row | µs per call | share |", "|---|---:|---:|"]
    lines += [f"| {row['name']} | {row['us_per_call']:.1f} | {100 * row['samples'] / total:.1f} % |"
              for row in stages["rows"]]
    return "\n".join(lines)
