"""``make bench``: the policy gate timed as a user runs it, beside Checkov.

Every measurement is a fresh process on a generated file (``tootcheck policy FILE``,
``checkov -f FILE``): start-up, imports and parsing included. Each input gets a warm-up
run per tool (file cache, .pyc), then several rounds in alternating order (A B, B A,
...), so neither tool always runs first on a machine whose load changes. The table gives
the median and the spread (min-max) of wall time, of CPU time (user + system of the
child and the workers it waits for, from its rusage through ``os.wait4``) and of peak
memory, two ways: the largest single process (the child's ``ru_maxrss`` through
``os.wait4``, which covers the workers it forks and waits for) and all its processes
together (the sum of their proportional set sizes, sampled from /proc every 50 ms or,
for large processes, less often, so that sampling takes at most a tenth of a core: a
page a forked worker shares with its parent counts once, as a memory limit on the
user's job counts it). A target is judged on the larger of the two.

Inputs (in the user cache directory, generated once per size):
- ``mix-N``: N objects, copies of the reference render (Deployments with probes and
  env, Services, Ingresses, PVCs, ConfigMaps, NetworkPolicies, Traefik Middlewares) in
  distinct namespaces, topped up with small objects of the same kinds;
- ``configmaps-50mb``: about 98,000 ConfigMaps in one 50 MB file (the parser's stress).

Checkov is compared on the 1,000-object mix only (it needs minutes beyond that). It is
used from PATH when present, else installed (pinned) into its own venv in the user
cache directory, never into the project's venv. If it cannot be installed, the bench
says so loudly and still prints tootcheck's table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tootcheck import resources
from tootcheck.config_file import project_root
from tootcheck.policy.treememory import TreeMemory

CHECKOV_VERSION = "3.3.30"
ROOT = project_root()  # make bench runs in the repository
REFERENCE = ROOT / "manifests" / "rendered" / "mastodon.yaml"
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000,)
CONFIGMAP_STRESS = 98_387  # objects in the 50 MB ConfigMap file
INSTALL_TIMEOUT_S = 900
RUN_TIMEOUT_S = 900
TARGETS = {  # the gate's targets (issue 12): wall seconds, peak MB
    1_000: (0.8, None), 100_000: (15.0, 500.0), CONFIGMAP_STRESS: (15.0, 500.0)}
CHECKOV_RATIO_TARGET = 10.0


# ------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    def text(self, fmt: str = "{:.2f}") -> str:
        return f"{fmt.format(self.median)} ({fmt.format(self.low)}-{fmt.format(self.high)})"


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("no values")
    return Spread(statistics.median(values), min(values), max(values))


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    peak_mb: float  # the largest single process
    exit_code: int
    all_mb: float = 0.0  # the process and its workers together (0: not measured)


@dataclass
class Series:
    tool: str
    input: str
    objects: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> Spread:
        return spread([s.wall_s for s in self.samples])

    @property
    def cpu(self) -> Spread:
        return spread([s.cpu_s for s in self.samples])

    @property
    def peak(self) -> Spread:
        return spread([s.peak_mb for s in self.samples])

    @property
    def all_procs(self) -> Spread:
        return spread([s.all_mb for s in self.samples])

    @property
    def memory(self) -> float:
        """What a memory target is judged on: the larger of the two peaks (medians)."""
        return max(self.peak.median, self.all_procs.median)


def round_orders(tools: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of the tools in each round: as given, then reversed, alternately."""
    return [list(tools) if i % 2 == 0 else list(reversed(tools)) for i in range(rounds)]


def ratio(slow: Spread, fast: Spread) -> float:
    return slow.median / fast.median if fast.median > 0 else float("inf")


def format_table(series: Sequence[Series], targets: Mapping[int, tuple[float | None, float | None]]
                 ) -> str:
    """One line per tool and input: median (min-max) of wall, CPU and peak memory."""
    head = (f"{'tool':<10} {'input':<18} {'objects':>8}  {'wall s':<20} {'CPU s':<20} "
            f"{'peak MB (1 proc)':<17} {'all procs MB':<17} {'runs':>4}  target")
    lines = [head, "-" * len(head)]
    for s in series:
        verdict = ""
        wall_t, mem_t = targets.get(s.objects, (None, None)) if s.tool == "tootcheck" else (
            None, None)
        if wall_t is not None:
            ok = s.wall.median <= wall_t and (mem_t is None or s.memory <= mem_t)
            verdict = (f"<= {wall_t:g} s" + (f", <= {mem_t:g} MB" if mem_t else "")
                       + (": met" if ok else ": MISSED"))
        failed = [x.exit_code for x in s.samples if x.exit_code not in (0, 1)]
        if failed:
            verdict += f" (exit {failed[0]}: see above)"
        every = s.all_procs.text("{:.0f}") if s.all_procs.low > 0 else "-"
        lines.append(f"{s.tool:<10} {s.input:<18} {s.objects:>8}  {s.wall.text():<20} "
                     f"{s.cpu.text():<20} {s.peak.text('{:.0f}'):<17} {every:<17} "
                     f"{len(s.samples):>4}  {verdict}")
    return "\n".join(lines)


def machine() -> str:
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}), {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f} at start")


# ------------------------------------------------------------------ inputs


def mix_documents(n: int) -> list[str]:
    """``n`` objects as YAML documents: whole copies of the reference render, copy i in
    namespace bench-<i> (references rewritten with it), then small objects of the same
    kinds until there are ``n``."""
    import yaml

    from tootcheck.policy.bundle import parse_stream

    base = [o.data for o in parse_stream(REFERENCE.read_text(), "mastodon.yaml")]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    template = [yaml.dump(d, Dumper=dumper, sort_keys=False) for d in base]
    docs: list[str] = []
    for i in range(n // len(base)):
        docs.extend(retarget(text, f"bench-{i:05d}") for text in template)
    fillers = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: filler-{i}\n"
        "  namespace: bench-filler\ndata:\n  LOG_LEVEL: info\n",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: filler-{i}\n"
        "  namespace: bench-filler\nautomountServiceAccountToken: false\n",
    )
    while len(docs) < n:
        docs.append(fillers[len(docs) % 2].format(i=len(docs)))
    return docs


def retarget(doc: str, ns: str) -> str:
    """The reference's document moved to namespace ``ns`` (Traefik middleware references,
    which carry the namespace in their name, included)."""
    lines = []
    for line in doc.split("\n"):
        if line == "  name: mastodon" and "kind: Namespace" in doc:
            line = f"  name: {ns}"
        elif line.strip() == "namespace: mastodon":
            line = line.replace("mastodon", ns)
        elif "router.middlewares:" in line:
            line = line.replace("mastodon-", f"{ns}-")
        lines.append(line)
    return "\n".join(lines)


def configmap_documents(n: int) -> list[str]:
    return [f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-{i:06d}
  namespace: stress-{i % 50:02d}
  labels:
    app.kubernetes.io/name: stress
    app.kubernetes.io/instance: stress-{i % 50:02d}
    app.kubernetes.io/component: settings
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: "search,translation,media-proxy,web-push,streaming-api,{i}"
  DESCRIPTION: "A generated ConfigMap for the parser stress test, number {i:06d}, with text."
  TIMEOUTS: "connect=5s read=30s write=30s idle=120s keepalive=75s retries=3 backoff=250ms"
  CACHE_TTL: "3600"
  REGION: eu-central
""" for i in range(n)]


def write_input(path: Path, make: Callable[[], list[str]]) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            for doc in make():
                f.write("---\n")
                f.write(doc if doc.endswith("\n") else doc + "\n")
        tmp.replace(path)
    return path


def policy_config(folder: Path) -> Path:
    """The external Secret the reference render expects, as the project's config says."""
    from tootcheck.policy.config import MASTODON_SECRET_KEYS

    path = folder / "tootcheck.toml"
    path.write_text('[external_secrets]\n"mastodon-secrets" = ['
                    + ", ".join(f'"{k}"' for k in MASTODON_SECRET_KEYS) + "]\n")
    return path


# ------------------------------------------------------------------ running


def run_once(argv: Sequence[str], env: dict[str, str] | None = None,
             cwd: Path | None = None) -> tuple[Sample, str]:
    """One fresh process: wall, CPU (user+system), the peak RSS of its largest process
    and the peak of all its processes' PSS together."""
    started = time.perf_counter()
    # stderr to a file, not a pipe: a chatty child cannot block on a full pipe
    with open(os.devnull, "wb") as devnull, tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(list(argv), stdout=devnull, stderr=errors, env=env, cwd=cwd)
        memory = TreeMemory(proc.pid)
        killer = threading.Timer(RUN_TIMEOUT_S, proc.kill)  # the bound on one run
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        finally:
            killer.cancel()
            all_mb = memory.stop()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        err = errors.read().decode(errors="replace")
    peak_kb = usage.ru_maxrss  # kilobytes on Linux
    return Sample(wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024, proc.returncode,
                  all_mb), err


def checkov_executable(log: Callable[[str], None]) -> tuple[str | None, str]:
    on_path = shutil.which("checkov")
    if on_path:
        return on_path, "from PATH"
    venv = resources.cache_dir() / f"checkov-{CHECKOV_VERSION}" / "venv"
    exe = venv / "bin" / "checkov"
    if exe.exists():
        return str(exe), f"cached in {venv}"
    log(f"installing Checkov {CHECKOV_VERSION} into {venv} (once; a few minutes) ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True, timeout=300)
        proc = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                               f"checkov=={CHECKOV_VERSION}"], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"venv/pip failed: {exc}"
    if proc.returncode != 0 or not exe.exists():
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        return None, lines[-1] if lines else f"pip exited {proc.returncode}"
    return str(exe), f"installed now into {venv}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tootcheck.policy.bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1,000 objects only, 3 rounds (a minute instead of many)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per input (default 5)")
    parser.add_argument("--no-checkov", action="store_true", help="time tootcheck alone")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)

    def log(text: str) -> None:
        print(text, flush=True)

    if not REFERENCE.exists():
        print(f"bench: {REFERENCE} is missing (make render)", file=sys.stderr)
        return 2
    folder = resources.cache_dir() / "bench"
    log(f"Machine: {machine()}")
    log(f"Inputs in {folder}; {rounds} rounds after a warm-up run, tools in alternating order")
    inputs: list[tuple[str, int, Path]] = []
    for n in (QUICK_SIZES if args.quick else SIZES):
        inputs.append((f"mix-{n // 1000}k", n,
                       write_input(folder / f"mix-{n}.yaml", partial(mix_documents, n))))
    if not args.quick:
        inputs.append(("configmaps-50mb", CONFIGMAP_STRESS,
                       write_input(folder / f"configmaps-{CONFIGMAP_STRESS}.yaml",
                                   lambda: configmap_documents(CONFIGMAP_STRESS))))
    config = policy_config(folder)

    checkov, how = (None, "not requested (--no-checkov)") if args.no_checkov else \
        checkov_executable(log)
    if checkov is None and not args.no_checkov:
        log("!" * 78)
        log(f"!! Checkov {CHECKOV_VERSION} cannot be installed here: {how}")
        log("!! The comparison with Checkov is MISSING from this run.")
        log("!" * 78)
    checkov_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    checkov_env["BC_SKIP_MAPPING"] = "TRUE"  # no calls to the vendor's platform
    tootcheck_argv = [sys.executable, "-m", "tootcheck.cli", "policy", "--no-waivers",
                      "--config", str(config)]

    series: list[Series] = []
    for name, n, path in inputs:
        commands = {"tootcheck": [*tootcheck_argv, str(path)]}
        if checkov is not None and n == SIZES[0]:
            commands["checkov"] = [checkov, "-f", str(path), "--framework", "kubernetes",
                                   "--quiet", "--compact", "-o", "json", "--skip-download"]
        by_tool = {tool: Series(tool, name, n) for tool in commands}
        log(f"{name}: {n:,} objects, {path.stat().st_size / 1e6:.1f} MB ...")
        for tool, cmd in commands.items():  # warm-up, not counted
            sample, err = run_once(cmd, env=checkov_env if tool == "checkov" else None,
                                   cwd=ROOT)
            if sample.exit_code not in (0, 1):
                log(f"  {tool} exited {sample.exit_code}: {err.strip()[-300:]}")
        for order in round_orders(list(commands), rounds):
            for tool in order:
                sample, _ = run_once(commands[tool],
                                     env=checkov_env if tool == "checkov" else None,
                                     cwd=ROOT)
                by_tool[tool].samples.append(sample)
        series.extend(by_tool.values())

    log("")
    log("Whole process, fresh each run: median (min-max)")
    log(format_table(series, TARGETS))
    ours = next(s for s in series if s.tool == "tootcheck" and s.objects == SIZES[0])
    theirs = next((s for s in series if s.tool == "checkov"), None)
    if theirs is not None:
        r_wall, r_cpu = ratio(theirs.wall, ours.wall), ratio(theirs.cpu, ours.cpu)
        verdict = "met" if r_wall >= CHECKOV_RATIO_TARGET else "MISSED"
        log(f"Checkov {CHECKOV_VERSION} ({how}) / tootcheck on the same {SIZES[0]:,} objects: "
            f"{r_wall:.1f}x the wall time, {r_cpu:.1f}x the CPU time, "
            f"{ratio(theirs.peak, ours.peak):.1f}x the peak memory (1 proc) "
            f"(target >= {CHECKOV_RATIO_TARGET:g}x wall: {verdict})")
    else:
        log(f"Checkov: NOT COMPARED ({how})")
    per_object = [s.cpu.median / s.objects for s in series
                  if s.tool == "tootcheck" and s.input.startswith("mix-")]
    if len(per_object) > 1:
        growth = per_object[-1] / per_object[0]
        log(f"tootcheck CPU per object from the smallest to the largest mix: x{growth:.2f} "
            f"({'linear' if growth < 1.5 else 'NOT linear'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
