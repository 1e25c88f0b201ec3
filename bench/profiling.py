"""Profiling trackd under load with py-spy, and a summary of where its time goes.

py-spy samples the running process from outside (``py-spy record --pid``) and writes
``--format raw``: collapsed stacks, one ``frame;frame;...;leaf count`` line per distinct
stack, which flamegraph.pl, speedscope and inferno read as they are. The summary gives
each frame's share of the samples as the leaf (self) and anywhere on the stack
(inclusive), and the self share per component (grpc, aiohttp, pymongo, trackd's own
packages, ...).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# py-spy names files relative to their sys.path entry ("trackd/server/pipeline.py",
# "aiohttp/web_protocol.py"). First match wins: a path prefix -> its component.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("trackd/gateway/", "trackd trackd/gateway/"),
    ("trackd/server/", "trackd trackd/server/"),
    ("trackd/storage/", "trackd trackd/storage/"),
    ("trackd/cli/", "trackd trackd/cli/"),
    ("trackd/v1/", "trackd generated stubs"),
    ("grpc", "grpc (grpc.aio, cygrpc)"),
    ("aiohttp/", "aiohttp"),
    ("multidict/", "aiohttp"),
    ("yarl/", "aiohttp"),
    ("pydantic", "pydantic"),
    ("pymongo/", "pymongo / bson"),
    ("bson/", "pymongo / bson"),
    ("google/protobuf/", "protobuf"),
    ("uvloop/", "event loop (asyncio / uvloop)"),
    ("asyncio/", "event loop (asyncio / uvloop)"),
)
# Leaf frames whose self time is C code below them, not Python: named for what runs there.
LEAVES: dict[str, str] = {
    "Runner.run (asyncio/runners.py": "uvloop's C loop: socket I/O syscalls, epoll, callbacks",
    "Thread.run (threading.py": "native code in other threads (grpc core, pymongo)",
}


def py_spy() -> str | None:
    """The py-spy executable: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, seconds: int, output: Path, *, rate: int = 200,
          native: bool = False) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` on ``pid`` for ``seconds``; wait on the returned process."""
    exe = py_spy()
    if exe is None:
        raise FileNotFoundError("py-spy is not installed: .venv/bin/pip install py-spy")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate),
            "--format", "raw", "--output", str(output)]
    if native:
        argv.append("--native")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


@dataclass
class Summary:
    samples: int = 0
    self_share: list[tuple[str, float]] = field(default_factory=list)
    inclusive_share: list[tuple[str, float]] = field(default_factory=list)
    components: list[tuple[str, float]] = field(default_factory=list)
    trackd_inclusive: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "self": [{"frame": f, "share": s} for f, s in self.self_share],
            "inclusive": [{"frame": f, "share": s} for f, s in self.inclusive_share],
            "components": [{"component": c, "share": s} for c, s in self.components],
            "trackd_inclusive": [{"frame": f, "share": s} for f, s in self.trackd_inclusive],
        }

    def render(self) -> str:
        lines = [f"{self.samples:,} samples"]
        lines.append("  self time by component:")
        lines += [f"    {share:6.1%}  {name}" for name, share in self.components]
        lines.append("  top functions, self time:")
        lines += [f"    {share:6.1%}  {name}" for name, share in self.self_share]
        lines.append("  trackd's own functions, inclusive time (callees included):")
        lines += [f"    {share:6.1%}  {name}" for name, share in self.trackd_inclusive]
        lines.append("  top functions, inclusive time (without event-loop plumbing):")
        lines += [f"    {share:6.1%}  {name}" for name, share in self.inclusive_share]
        return "\n".join(lines)


def short(frame: str) -> str:
    """``func (file:line)`` with any absolute prefix of the file cut away."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = _relative(match["file"])
    line = f":{match['line']}" if match["line"] else ""
    return f"{match['func']} ({path}{line})"


def _relative(path: str) -> str:
    for anchor in ("site-packages/", "/lib/python3"):
        if anchor in path:
            path = path.split(anchor, 1)[1].split("/", 1)[-1] if anchor.startswith("/lib") \
                else path.split(anchor, 1)[1]
            break
    return path


def component(frame: str, *, leaf: bool = False) -> str:
    if leaf:
        for prefix, name in LEAVES.items():
            if frame.startswith(prefix):
                return name
    match = _FRAME.match(frame)
    path = _relative(match["file"]) if match else frame
    for prefix, name in COMPONENTS:
        if path.startswith(prefix) or f"/{prefix}" in path:
            return name
    return "other Python (stdlib)"


def _is_trackd(frame: str) -> bool:
    return component(frame).startswith("trackd ") and component(frame) != "trackd trackd/cli/"


def _ignored_inclusive(frame: str) -> bool:
    # Event-loop plumbing is on every stack; it says nothing about where time goes.
    return any(part in frame for part in ("asyncio/", "uvloop", "runners.py", "trackd/cli/main.py",
                                          "trackd/cli/serve.py",
                                          "<module>", "threading.py"))


def summarise(raw: Path, top: int = 15) -> Summary:
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    ours: set[str] = set()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        leaf[short(frames[-1])] += count
        parts[component(frames[-1], leaf=True)] += count
        seen = set()
        for frame in frames:
            if _ignored_inclusive(frame):
                continue
            name = short(frame)
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
            if _is_trackd(frame):
                ours.add(name)
    if not total:
        return Summary()
    return Summary(
        samples=total,
        self_share=[(f, n / total) for f, n in leaf.most_common(top)],
        inclusive_share=[(f, n / total) for f, n in inclusive.most_common(top)],
        components=[(c, n / total) for c, n in parts.most_common()],
        trackd_inclusive=[(f, n / total) for f, n in inclusive.most_common()
                          if f in ours][:top],
    )
