"""Issue 17: `moa serve` against LiteLLM's proxy, side by side on one instant backend.

Setup: the fake server in its own process, every model answering at once (no delay) with a
short streamed reply; each server under test as a subprocess on 127.0.0.1; the clients are
httpx async streams in this process. LiteLLM's proxy (the most used OpenAI-compatible proxy) runs
from the benchmark's own venv, never a moa dependency: set LITELLM to its `litellm` command, or
let this script make the venv (`pip install 'litellm[proxy]'` into a cache directory).

For each of: direct (the backend itself), LiteLLM pass-through, moa pass-through (`openai:m`),
moa 3-reference mix (`moa`, 4 calls a request) and moa pass-through with `--workers 2`:
  - latency added to a whole streamed answer, p50/p99: one client at a time, and at a steady
    (open-loop) 20, 50 and 100 requests/s;
  - the server's CPU time per request (its processes' utime + stime, from /proc);
  - the highest of the steady rates tried with p99 under 1 s;
  - peak RSS (VmHWM, summed over the server's processes).
And a bystander's `/health` p99 while one 100,000-message request is served.

The machine is small and shared, so the run is kept short: a few seconds per rate.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import MOA, Server, machine, moa_env, table, update_section  # noqa: E402

RATES = (20, 50, 100)
SEARCH_RATES = (20, 50, 100, 150, 200)  # tried in order for "the highest steady rate with p99 < 1 s"
SECONDS_PER_RATE = 3.0
SERIAL = 30  # requests one at a time
MIX = """
[defaults]
mix = "bench"
retries = 0

[mixes.bench]
references = ["openai:r1", "openai:r2", "openai:r3"]
aggregator = "openai:agg"
"""
TICKS = os.sysconf("SC_CLK_TCK")
LITELLM_SPEC = "litellm[proxy]>=1.50,<2"
# LiteLLM's proxy refuses to start without a master key; every client sends it (moa, run without
# --api-key, ignores it).
BEARER = "sk-" + secrets.token_hex(24)


# ------------------------------------------------------------------------------ processes

def tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def peak_rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
        except OSError:
            continue
        total += int(match.group(1)) if match else 0
    return total / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def start_moa(env: dict, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([MOA, "serve", "--port", "0", "--max-body", str(16 << 20), *args], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    if not select.select([proc.stderr], [], [], 60)[0]:
        proc.kill()
        raise RuntimeError("moa serve did not start within 60 s")
    url = re.search(r"(http://\S+)/v1", proc.stderr.readline()).group(1)
    subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)  # drain the access log
    wait_healthy(url + "/health", proc)
    return proc, url + "/v1"


def litellm_command() -> str:
    if os.environ.get("LITELLM"):
        return os.environ["LITELLM"]
    venv = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "moa-bench" / "litellm"
    command = venv / "bin" / "litellm"
    if not command.exists():
        print(f"installing {LITELLM_SPEC} into {venv} (the benchmark's own venv)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", LITELLM_SPEC], check=True)
    return str(command)


def start_litellm(backend_v1: str, home: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = Path(home, "litellm.yaml")
    config.write_text(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
        f"      api_base: {backend_v1}\n      api_key: sk-bench-0123456789\n"
        "litellm_settings:\n  telemetry: false\n  drop_params: true\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    # Offline: the model price list ships inside the package; nothing is fetched.
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR", NO_DOCS="True", DISABLE_ADMIN_UI="True",
               LITELLM_MASTER_KEY=BEARER)
    proc = subprocess.Popen([litellm_command(), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                             "--num_workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=home)
    wait_healthy(f"http://127.0.0.1:{port}/health/liveliness", proc, 180)
    return proc, f"http://127.0.0.1:{port}/v1"


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# -------------------------------------------------------------------------------- clients

async def stream_one(client: httpx.AsyncClient, url: str, model: str, i: int) -> float | None:
    """Seconds to [DONE] of one streamed request, None when it did not complete."""
    t0 = time.perf_counter()
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": f"question {i} please"}]}
    try:
        async with client.stream("POST", url + "/chat/completions", json=body) as response:
            done = False
            async for line in response.aiter_lines():
                done = done or line == "data: [DONE]"
        return time.perf_counter() - t0 if done and response.status_code == 200 else None
    except httpx.HTTPError:
        return None


def client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    return httpx.AsyncClient(timeout=30, limits=limits, headers={"Authorization": f"Bearer {BEARER}"})


async def serial(url: str, model: str) -> list[float]:
    async with client() as c:
        await stream_one(c, url, model, -1)  # warm the connection
        return [t for i in range(SERIAL) if (t := await stream_one(c, url, model, i)) is not None]


async def steady(url: str, model: str, rate: float) -> tuple[list[float], int]:
    """Requests started at a fixed rate for SECONDS_PER_RATE, whatever the answers do (open loop):
    (latencies of the completed ones, how many failed)."""
    n = int(rate * SECONDS_PER_RATE)
    async with client() as c:
        t0 = time.perf_counter()

        async def at(i: int) -> float | None:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            return await stream_one(c, url, model, i)

        results = await asyncio.gather(*(at(i) for i in range(n)))
    done = [r for r in results if r is not None]
    return done, n - len(done)


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def health_during_big_request(v1: str) -> tuple[float, float, int, int]:
    """(p99, max) seconds of /health asked again and again while one 100,000-message request is
    served, how many /health answers, and the big request's status."""
    base = v1.removesuffix("/v1")
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"} for i in range(100_000)]
    messages.append({"role": "user", "content": "the last question"})
    body = json.dumps({"model": "moa", "messages": messages}).encode()
    status = {}

    def big():
        status["code"] = httpx.post(v1 + "/chat/completions", content=body, timeout=120,
                                    headers={"Content-Type": "application/json"}).status_code

    thread = threading.Thread(target=big)
    latencies = []
    with httpx.Client(timeout=30) as c:
        c.get(base + "/health")
        thread.start()
        while thread.is_alive():
            t0 = time.perf_counter()
            c.get(base + "/health")
            latencies.append(time.perf_counter() - t0)
    thread.join()
    return quantile(latencies, 0.99), max(latencies or [float("nan")]), len(latencies), status.get("code", 0)


# ---------------------------------------------------------------------------------- main

def measure(name: str, url: str, model: str, pid: int | None) -> dict:
    asyncio.run(steady(url, model, 20))  # warm-up: connections, first-use imports
    row = {"name": name, "serial": asyncio.run(serial(url, model)), "rates": {}, "cpu": None}
    cpu0, count = (cpu_seconds(pid) if pid else 0.0), 0
    for rate in SEARCH_RATES:
        done, failed = asyncio.run(steady(url, model, rate))
        count += len(done) + failed
        row["rates"][rate] = (done, failed)
        if failed or quantile(done, 0.99) >= 1.0:
            break  # the next rate would only be worse
    if pid:
        row["cpu"] = (cpu_seconds(pid) - cpu0) / max(count, 1)
        row["rss"] = peak_rss_mb(pid)
    return row


def main() -> None:
    script = {m: {} for m in ("m", "r1", "r2", "r3", "agg")}
    with tempfile.TemporaryDirectory() as home, Server(script) as server:
        Path(home, "config.toml").write_text(MIX)
        env = moa_env(server.url, home)
        backend = server.url + "/v1"
        rows = [measure("backend direct", backend, "m", None)]
        procs = []
        try:
            litellm, lurl = start_litellm(backend, home)
            procs.append(litellm)
            rows.append(measure("LiteLLM proxy, pass-through", lurl, "m", litellm.pid))
            stop(litellm)
            moa, murl = start_moa(env)
            procs.append(moa)
            rows.append(measure("moa serve, pass-through", murl, "openai:m", moa.pid))
            rows.append(measure("moa serve, 3-reference mix (4 calls)", murl, "moa", moa.pid))
            health = health_during_big_request(murl)
            moa_code = stop(moa)
            workers, wurl = start_moa(env, "--workers", "2")
            procs.append(workers)
            rows.append(measure("moa serve --workers 2, pass-through", wurl, "openai:m", workers.pid))
            workers_code = stop(workers)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()

    direct = rows[0]

    def ms(x: float | None) -> str:
        return "-" if x is None or x != x else f"{x * 1000:.1f} ms"

    def added(row: dict, values: list[float], base: list[float], q: float) -> str:
        return ms(quantile(values, q) - quantile(base, q)) if row is not direct else ms(quantile(values, q))

    def best_rate(row: dict) -> str:
        ok = [r for r, (done, failed) in row["rates"].items() if not failed and quantile(done, 0.99) < 1.0]
        top = max(ok) if ok else None
        return "-" if top is None else (f">= {top}" if top == SEARCH_RATES[-1] else str(top))

    latency = []
    for row in rows:
        cells = [row["name"], f"{added(row, row['serial'], direct['serial'], 0.5)} / "
                               f"{added(row, row['serial'], direct['serial'], 0.99)}"]
        for rate in RATES:
            if rate in row["rates"]:
                done, failed = row["rates"][rate]
                base = direct["rates"].get(rate, ([], 0))[0]
                cell = f"{added(row, done, base, 0.5)} / {added(row, done, base, 0.99)}"
                cells.append(cell + (f" ({failed} failed)" if failed else ""))
            else:
                cells.append("(over capacity)")
        cells += [ms(row["cpu"]), best_rate(row), f"{row['rss']:.0f} MB" if "rss" in row else "-"]
        latency.append(cells)
    lite, passthrough, one, two = rows[1], rows[2], rows[2], rows[4]
    ratio = passthrough["cpu"] / lite["cpu"] if lite["cpu"] else float("nan")
    serial_one, serial_two = quantile(one["serial"], 0.5), quantile(two["serial"], 0.5)
    goals = [
        ["moa pass-through CPU per request / LiteLLM's", f"{ratio:.2f} ({ms(passthrough['cpu'])} vs {ms(lite['cpu'])})",
         "<= 0.20", "met" if ratio <= 0.2 else "MISSED"],
        ["`--workers 2` vs 1 worker, one client (p50 of the whole answer)", f"{ms(serial_two)} vs {ms(serial_one)}",
         "no slower", "met" if serial_two <= serial_one * 1.2 + 0.002 else "MISSED"],
        [f"bystander /health p99 (max) while a 100,000-message request is served (status {health[3]})",
         f"{ms(health[0])} ({ms(health[1])}), {health[2]} answers", "<= 50 ms", "met" if health[0] <= 0.05 else "MISSED"],
        ["SIGTERM exit codes (1 worker, 2 workers)", f"{moa_code}, {workers_code}", "0, 0",
         "met" if moa_code == workers_code == 0 else "MISSED"],
    ]
    load = os.getloadavg()
    body = f"""## Issue 17: `moa serve` against LiteLLM's proxy (`benchmarks/serve.py`)

Setup: the fake server in its own process, every model answering at once with a short streamed
reply; each server as a subprocess on 127.0.0.1; httpx async streaming clients in the benchmark
process. Steady rates are open-loop (requests start on schedule whatever the answers do), for
{SECONDS_PER_RATE:.0f} s each, tried in order {", ".join(map(str, SEARCH_RATES))} requests/s until one fails or has
p99 >= 1 s. LiteLLM's proxy (`{LITELLM_SPEC}`, 1 worker) runs from the benchmark's own venv.
Load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end of the run. The clients, the backend and
the server under test share the 2 cores, so compare rows within this run, not with other runs.
{machine()}.

Added latency is the row's percentile minus the backend's own at the same load (the direct row
shows the backend's absolute figures). CPU is the server's processes' own, per request, over
the steady-rate runs.

{table(["server", "added p50 / p99, one client", *[f"added p50 / p99, {r}/s" for r in RATES],
        "CPU per request", "highest steady rate, p99 < 1 s", "peak RSS"], latency)}

{table(["goal", "measured", "target", ""], goals)}
"""
    print(body)
    update_section("serve", body)


if __name__ == "__main__":
    main()
