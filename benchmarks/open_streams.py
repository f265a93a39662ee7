"""The proxy's memory with many open streams: 250 to 2,000 clients each hold a streamed answer open through the
proxy to a stand-in engine that sends a chunk every few seconds; the proxy's resident memory is read at each step.
Past --max-connections (default 1000) a client gets 503 with Retry-After, so the proxy's memory stops growing.

    python benchmarks/open_streams.py --model models/m13_rank [--steps 250 500 1000 2000] [--output FILE]

Everything runs on loopback; each client stops after its step, and the engine and proxy are stopped at the end."""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
CHUNK = b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def endless(request):
    await request.body()

    async def chunks():
        while True:
            yield CHUNK
            await asyncio.sleep(5)
    return StreamingResponse(chunks(), media_type="text/event-stream")


def start_engine():
    port = free_port()
    app = Starlette(routes=[Route("/v1/completions", endless, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", backlog=4096))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def start_proxy(model, upstream):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "thinkcount", "serve", "--model", str(model), "--port", str(port),
                             "--upstream", upstream], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the proxy did not start in 120 s")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


async def hold(session, url, opened, statuses, release):
    """One client: open a stream, read its first chunk, hold it until released."""
    try:
        async with session.post(f"{url}/v1/completions", json={"prompt": "Explain rain.", "stream": True}) as r:
            statuses.append(r.status)
            if r.status == 200:
                await r.content.readline()
                opened.append(1)
                await release.wait()
    except aiohttp.ClientError as e:
        statuses.append(type(e).__name__)


async def measure(url, pid, steps):
    rows, release = [], asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        await session.post(f"{url}/v1/completions", json={"prompt": "warm up"})  # first scoring loads lazily
        rows.append({"clients": 0, "open_streams": 0, "rss_mib": round(rss_mib(pid), 1)})
        tasks, opened, statuses = [], [], []
        for target in steps:
            tasks += [asyncio.create_task(hold(session, url, opened, statuses, release))
                      for _ in range(target - len(tasks))]
            deadline = time.monotonic() + 60
            while len(statuses) < target and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)
            rows.append({"clients": target, "open_streams": len(opened), "refused_503": statuses.count(503),
                         "other": sum(1 for s in statuses if s not in (200, 503)), "rss_mib": round(rss_mib(pid), 1)})
            print(rows[-1], flush=True)
        release.set()
        await asyncio.gather(*tasks)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models/m13_rank"))
    parser.add_argument("--steps", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--output", default=str(ROOT / "reports/open_streams.json"))
    args = parser.parse_args()
    engine, upstream = start_engine()
    proc, url = start_proxy(args.model, upstream)
    try:
        rows = asyncio.run(measure(url, proc.pid, args.steps))
    finally:
        proc.terminate()
        proc.wait(60)
        engine.should_exit = True
    growth = [(b["rss_mib"] - a["rss_mib"]) / max(b["open_streams"] - a["open_streams"], 1) * 1024
              for a, b in zip(rows, rows[1:]) if b["open_streams"] > a["open_streams"]]
    result = {"steps": rows, "kib_per_open_stream": round(max(growth), 1) if growth else None}
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
