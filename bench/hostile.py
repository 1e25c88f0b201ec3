"""Hostile input against a live ``trackd serve``: what each malformed request gets, and what
it costs the good requests around it.

``bench/run hostile`` (``python -m bench.hostile``) starts ``trackd serve`` on a fresh
embedded database in a temporary directory, then:

1. the probe: sends each hostile request of issue 11 once, over its own connection, and
   prints its status, content type, the start of its body, how long it took, how long the
   next good request took after it, and the server's CPU seconds over both;
2. the bench row: good single events (``POST /api/v1/events``) from ``--clients``
   connections for ``--duration`` seconds with clean traffic only, then the same load again
   while ``--attackers`` connections (from a process of their own) send every probe
   request, the gzip bomb included, back to back; it
   prints the good requests' p50/p99/max latency and throughput in both windows, and
   their ratio. Both windows run in the same run, against the same server.

Every request here is raw bytes over an asyncio socket, so a malformed request is sent
exactly as written. The results go to ``bench/results/hostile-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.loadgen import percentile
from bench.procs import REPO, Child, child_env, free_port, tree_cpu_seconds, wait_for_ports

RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"


def gzip_bomb(megabytes: int = 1024) -> bytes:
    """About 1 MB of gzip that inflates to ``megabytes`` MiB of zeros."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31, 9, zlib.Z_RLE)
    block = bytes(1 << 20)
    return b"".join(comp.compress(block) for _ in range(megabytes)) + comp.flush()


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    closed: bool
    seconds: float


async def exchange(port: int, raw: bytes, *, seconds: float = 15.0,
                   responses: int = 1) -> list[Answer]:
    """Send ``raw`` on a new connection; read up to ``responses`` answers (or until EOF)."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    answers: list[Answer] = []
    try:
        writer.write(raw)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        async with asyncio.timeout(seconds):
            while len(answers) < responses:
                head = await _read_head(reader)
                if head is None:
                    break
                status_line, headers = head
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                closed = headers.get("connection", "").lower() == "close" or \
                    status_line.startswith("HTTP/1.0")
                answers.append(Answer(int(status_line.split()[1]),
                                      headers.get("content-type", ""), body, closed,
                                      time.perf_counter() - start))
                if closed:
                    break
    except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    if not answers:
        answers.append(Answer(0, "", b"", True, time.perf_counter() - start))
    return answers


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = raw.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def request(method: str, path: str, body: bytes = b"", *, key: str = "",
            headers: dict[str, str] | None = None, host: bool = True,
            version: str = "HTTP/1.1", length: bool = True) -> bytes:
    lines = [f"{method} {path} {version}"]
    if host:
        lines.append(f"Host: {HOST}")
    if key:
        lines.append(f"Authorization: Bearer {key}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if length and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def good_event(key: str) -> bytes:
    body = json.dumps({"external_user_id": "u_good", "name": "good",
                       "event_id": uuid.uuid4().hex}).encode()
    return request("POST", "/api/v1/events", body, key=key,
                   headers={"Content-Type": "application/json"})


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


JSON = {"Content-Type": "application/json"}


def cases(key: str) -> list[tuple[str, str, Callable[[], bytes]]]:
    """(finding, what, the raw request) for every hostile request of issue 11."""
    bomb = gzip_bomb()

    def post(path: str, body: Any, headers: dict[str, str] | None = None) -> bytes:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return request("POST", path, raw, key=key, headers={**JSON, **(headers or {})})

    event = {"external_user_id": "u1", "name": "x"}
    return [
        ("1", "gzip bomb 1 MB -> 1 GiB, VibeFollow events",
         lambda: post("/api/v1/events", bomb, {"Content-Encoding": "gzip"})),
        ("2", "Content-Encoding gzip, body not gzip",
         lambda: post("/api/v1/events", b"not gzip", {"Content-Encoding": "gzip"})),
        ("2", "Content-Encoding deflate, body not deflate",
         lambda: post("/api/v1/events", b"not gzip", {"Content-Encoding": "deflate"})),
        ("2", "Content-Encoding br",
         lambda: post("/api/v1/events", b"xx", {"Content-Encoding": "br"})),
        ("2", "Content-Encoding zstd, VibeFollow batch",
         lambda: post("/api/v1/events/batch", b"xx", {"Content-Encoding": "zstd"})),
        ("3", "VibeFollow timestamp 0001-01-01T00:00:00+01:00",
         lambda: post("/api/v1/events", {**event, "timestamp": "0001-01-01T00:00:00+01:00"})),
        ("3", "VibeFollow timestamp 9999-12-31T23:00:00-14:00",
         lambda: post("/api/v1/events", {**event, "timestamp": "9999-12-31T23:00:00-14:00"})),
        ("3", "users/bulk, one signupDate out of range",
         lambda: post("/api/v1/users/bulk", {"users": [
             {"external_user_id": "ok"},
             {"external_user_id": "u2",
              "traits": {"signupDate": "0001-01-01T00:00:00+01:00"}}]})),
        ("3", "audience evaluate since out of range",
         lambda: post("/api/v1/audiences/evaluate", {
             "groups": [{"rules": [{"event": "x", "op": "has_done",
                                    "since": "0001-01-01T00:00:00+01:00"}]}]})),
        ("4", "properties nested 35 deep",
         lambda: post("/api/v1/events", {**event, "properties": nested(35)})),
        ("6", "DEL after the key in Authorization",
         lambda: request("POST", "/api/v1/events", b"{}", headers={
             **JSON, "Authorization": f"Bearer {key}\x7f"})),
        ("6", "Authorization over 8190 bytes",
         lambda: request("POST", "/api/v1/events", b"{}", headers={
             **JSON, "Authorization": f"Bearer {key}" + "x" * 8200})),
        ("6", "key in query, bad HTTP version",
         lambda: request("GET", f"/api/v1/events?key={key}", version="HTTP/9.x")),
        ("7", "PUT /api/v1/events", lambda: request("PUT", "/api/v1/events", key=key)),
        ("7", "DELETE /v1/events", lambda: request("DELETE", "/v1/events", key=key)),
        ("7", "GET /api/v1/contacts/a/b",
         lambda: request("GET", "/api/v1/contacts/a/b", key=key)),
        ("7", "GET /nowhere", lambda: request("GET", "/nowhere")),
        ("7", "lower-case method", lambda: request("post", "/api/v1/events", b"{}", key=key)),
        ("7", "duplicate Content-Type",
         lambda: request("POST", "/api/v1/events", b"{}", key=key, headers={
             "Content-Type": "application/json\r\nContent-Type: text/plain"})),
        ("7", "129 headers", lambda: request("POST", "/api/v1/events", b"{}", key=key,
                                             headers={f"X-H{i}": "1" for i in range(129)})),
        ("7", "bad chunk size", lambda: request(
            "POST", "/api/v1/events", key=key,
            headers={**JSON, "Transfer-Encoding": "chunked"}) + b"zz\r\n{}\r\n0\r\n\r\n"),
        ("7", "Transfer-Encoding with Content-Length", lambda: request(
            "POST", "/api/v1/events", key=key,
            headers={**JSON, "Transfer-Encoding": "chunked", "Content-Length": "2"})
            + b"2\r\n{}\r\n0\r\n\r\n"),
        ("7", "missing Host", lambda: request("POST", "/api/v1/events", b"{}", key=key,
                                              host=False, headers=JSON)),
        ("8", "valid event pipelined before bad Content-Length",
         lambda: good_event(key) + request("POST", "/api/v1/events", b"{}", key=key,
                                           headers={"Content-Length": "1x"}, length=False)),
    ]


async def probe(port: int, key: str, pid: int) -> list[dict[str, Any]]:
    rows = []
    for finding, what, build in cases(key):
        raw = build()
        cpu = tree_cpu_seconds([pid])
        answers = await exchange(port, raw, responses=2 if finding == "8" else 1)
        good = (await exchange(port, good_event(key)))[0]
        cpu = tree_cpu_seconds([pid]) - cpu
        first = answers[0]
        row: dict[str, Any] = {
            "finding": finding, "what": what,
            "statuses": [a.status for a in answers],
            "content_type": first.content_type.split(";")[0],
            "body": first.body[:100].decode("utf-8", "replace"),
            "ms": round(first.seconds * 1000, 1),
            "next_good_status": good.status,
            "next_good_ms": round(good.seconds * 1000, 1),
            "server_cpu_s": round(cpu, 2),
            "key_echoed": key in first.body.decode("latin-1"),
        }
        rows.append(row)
        print(f"  [{finding}] {what:<50} {row['statuses']} {row['content_type']:<17} "
              f"{row['ms']:>8} ms  next good {good.status} {row['next_good_ms']:>7} ms  "
              f"cpu {cpu:.2f} s  {row['body'][:70]!r}", flush=True)
    return rows


# -- the bench row ---------------------------------------------------------------------------


async def good_client(port: int, key: str, until: float, latencies: list[float],
                      errors: list[int]) -> None:
    """Good single events, one at a time on one keep-alive connection."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(good_event(key))
            head = await _read_head(reader)
            if head is None:
                errors.append(0)
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
                continue
            length = int(head[1].get("content-length", "0") or 0)
            if length:
                await reader.readexactly(length)
            status = int(head[0].split()[1])
            if status == 202:
                latencies.append(time.perf_counter() - start)
            else:
                errors.append(status)
    finally:
        writer.close()


async def attacker(port: int, raws: list[bytes], until: float, sent: list[int]) -> None:
    index = 0
    while time.perf_counter() < until:
        await exchange(port, raws[index % len(raws)], seconds=5.0)
        sent.append(1)
        index += 1


async def attack(port: int, key: str, args: argparse.Namespace) -> int:
    """The attackers alone, in this (child) process; prints how many requests they sent."""
    sent: list[int] = []
    mix = hostile_mix(key)
    until = time.perf_counter() + args.duration
    await asyncio.gather(*(attacker(port, mix, until, sent) for _ in range(args.attackers)))
    print(len(sent), flush=True)
    return 0


async def window(port: int, key: str, args: argparse.Namespace, pid: int,
                 hostile: bool) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[int] = []
    sent = 0
    cpu = tree_cpu_seconds([pid])
    until = time.perf_counter() + args.duration
    attackers = None
    if hostile:  # their own process, so they do not slow the good clients' generator
        attackers = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.hostile", "--attack-port", str(port),
            "--attack-key", key, "--duration", str(args.duration),
            "--attackers", str(args.attackers), stdout=asyncio.subprocess.PIPE,
            cwd=REPO, env=child_env())
    await asyncio.gather(*(good_client(port, key, until, latencies, errors)
                           for _ in range(args.clients)))
    if attackers is not None:
        out, _ = await attackers.communicate()
        sent = int(out.decode().strip().splitlines()[-1])
    cpu = tree_cpu_seconds([pid]) - cpu
    micros = sorted(int(x * 1e6) for x in latencies)
    return {
        "good_requests": len(micros),
        "good_per_s": round(len(micros) / args.duration, 1),
        "p50_ms": round(percentile(micros, 50) / 1000, 2) if micros else None,
        "p99_ms": round(percentile(micros, 99) / 1000, 2) if micros else None,
        "max_ms": round(micros[-1] / 1000, 2) if micros else None,
        "good_errors": len(errors),
        "hostile_requests": sent,
        "server_cores": round(cpu / args.duration, 2),
    }


def hostile_mix(key: str) -> list[bytes]:
    """What the attackers send: every probe case but the slow-to-build ones, and bombs."""
    return [build() for _finding, _what, build in cases(key)]


async def run(args: argparse.Namespace, port: int, key: str, pid: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if not args.skip_probe:
        print("probe: each hostile request once, then one good request", flush=True)
        results["probe"] = await probe(port, key, pid)
    print(f"bench: {args.clients} good clients for {args.duration} s, clean then with "
          f"{args.attackers} attackers", flush=True)
    clean = await window(port, key, args, pid, False)
    print(f"  clean:   {clean}", flush=True)
    hostile = await window(port, key, args, pid, True)
    print(f"  hostile: {hostile}", flush=True)
    ratio = {name: round(hostile[name] / clean[name], 2)
             for name in ("p50_ms", "p99_ms", "good_per_s") if clean[name] and hostile[name]}
    print(f"  hostile / clean: {ratio}", flush=True)
    results["bench"] = {"clean": clean, "hostile": hostile, "ratio": ratio}
    return results


def log_summary(text: str) -> dict[str, int]:
    return {
        "log_bytes": len(text.encode()),
        "error_lines": len(re.findall(r" ERROR ", text)),
        "tracebacks": text.count("Traceback (most recent call last)"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per window (8)")
    parser.add_argument("--clients", type=int, default=8, help="good connections (8)")
    parser.add_argument("--attackers", type=int, default=2,
                        help="connections sending hostile requests (2)")
    parser.add_argument("--skip-probe", action="store_true", help="only the bench row")
    # Internal: run as the attackers' process against a running gateway.
    parser.add_argument("--attack-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--attack-key", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from bench.main import trackd_command

    args = parse_args(argv)
    if args.attack_port:
        return asyncio.run(attack(args.attack_port, args.attack_key, args))
    with tempfile.TemporaryDirectory(prefix="trackd-hostile-") as work:
        http_port, grpc_port = free_port(), free_port()
        child = Child("trackd", [*trackd_command(), "serve", "--data-dir", work,
                                 "--http-port", str(http_port),
                                 "--grpc-port", str(grpc_port)],
                      Path(work), stdout_pipe=True)
        try:
            assert child.process.stdout is not None
            key = ""
            for line in child.process.stdout:
                if line.strip().startswith(b"trk_"):
                    key = line.strip().decode()
                    break
            wait_for_ports(child, [http_port, grpc_port], timeout=60)
            results = asyncio.run(run(args, http_port, key, child.pid))
        finally:
            child.stop()
        results["log"] = log_summary(child.log_path.read_text(errors="replace"))
        print(f"server log: {results['log']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"hostile-{stamp}.json"
    out.write_text(json.dumps({"args": vars(args), **results}, indent=2, default=str))
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


