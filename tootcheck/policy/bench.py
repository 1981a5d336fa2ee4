"""Policy engine benchmark (``make bench``): not a timed test.

1. The engine (every rule, strict schema validation included) over synthetic
   bundles of 250/500/1,000/2,000 objects, made by copying the reference render into
   distinct namespaces: objects per second and whether cost grows linearly.
2. Parsing the 1,000-object bundle as YAML.
3. Side by side with Checkov on the same rendered YAML, where Checkov can be installed
   into a throwaway venv under .cache/ (never the project venv). If it cannot, this
   says so and that part is skipped (exit 0).
"""

from __future__ import annotations

import copy
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from tootcheck.config_file import project_root
from tootcheck.policy.bundle import Bundle, K8sObject, parse_stream
from tootcheck.policy.config import MASTODON_SECRET_KEYS, PolicyConfig
from tootcheck.policy.engine import evaluate
from tootcheck.policy.registry import Rule, all_rules

ROOT = project_root()  # make bench runs in the repository
REFERENCE = ROOT / "manifests" / "rendered" / "mastodon.yaml"
CACHE = ROOT / ".cache"
CHECKOV_VENV = CACHE / "checkov-venv"
CHECKOV_VERSION = "3.3.30"
SIZES = (250, 500, 1000, 2000)
INSTALL_TIMEOUT_S = 900
CHECKOV_TIMEOUT_S = 900


def synthetic_docs(n: int) -> list[dict[str, Any]]:
    """``n`` objects: whole copies of the reference (copy i in namespace bench-<i>), topped
    up with small ConfigMaps so that no copy is cut in half."""
    base = [o.data for o in parse_stream(REFERENCE.read_text(), "mastodon.yaml")]
    out: list[dict[str, Any]] = []
    for i in range(n // len(base)):
        ns = f"bench-{i:04d}"
        for doc in base:
            d = copy.deepcopy(doc)
            if d["kind"] == "Namespace":
                d["metadata"]["name"] = ns
            else:
                d["metadata"]["namespace"] = ns
            ann = d["metadata"].get("annotations") or {}
            key = "traefik.ingress.kubernetes.io/router.middlewares"
            if key in ann:
                ann[key] = ann[key].replace("mastodon-", f"{ns}-")
            out.append(d)
    while len(out) < n:
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": f"filler-{len(out)}", "namespace": "bench-filler"}, "data": {"A": "b"}})
    return out


def to_bundle(docs: list[dict[str, Any]]) -> Bundle:
    return Bundle([K8sObject(data=d, source="bench.yaml", doc=i, line=1,
                             default_namespace="mastodon") for i, d in enumerate(docs)])


def engine_seconds(docs: list[dict[str, Any]], config: PolicyConfig, rules: list[Rule]) -> float:
    """CPU seconds of one evaluation: every size does the same total work (smaller
    bundles are evaluated several times) and the best of 3 rounds counts, so the figure
    holds steady on a busy machine."""
    reps = max(1, max(SIZES) // max(1, len(docs)))
    best = float("inf")
    for _ in range(3):
        bundles = [to_bundle(docs) for _ in range(reps)]
        started = time.process_time()
        for bundle in bundles:
            run = evaluate([bundle], config, rules=rules)
        best = min(best, (time.process_time() - started) / reps)
        assert not run.failed(strict=False), run.failing_rule_ids()
    return best


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], **kwargs: Any) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run a command; (result, wall seconds, CPU seconds of the child)."""
    cpu, wall = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=CHECKOV_TIMEOUT_S,
                          **kwargs)
    return proc, time.perf_counter() - wall, _children_cpu() - cpu


def checkov_bin() -> tuple[Path | None, str]:
    exe = CHECKOV_VENV / "bin" / "checkov"
    if exe.exists():
        return exe, "already installed"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True,
                       capture_output=True, timeout=120)
        proc = subprocess.run([str(CHECKOV_VENV / "bin" / "pip"), "install", "--quiet",
                               f"checkov=={CHECKOV_VERSION}"], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"venv/pip failed: {exc}"
    if proc.returncode != 0 or not exe.exists():
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        return None, lines[-1] if lines else f"pip exited {proc.returncode}"
    return exe, "installed now"


def compare_checkov(path: Path, n: int) -> None:
    print(f"\nSide by side on the same {n}-object render ({path.relative_to(ROOT)}), "
          f"each as a fresh process:")
    exe, how = checkov_bin()
    if exe is None:
        print(f"  Checkov {CHECKOV_VERSION}: cannot be installed here ({how}); comparison skipped")
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["BC_SKIP_MAPPING"] = "TRUE"  # no platform calls
    proc, checkov_wall, checkov_cpu = timed(
        [str(exe), "-f", str(path), "--framework", "kubernetes", "--quiet", "--compact",
         "-o", "json", "--skip-download"], env=env)
    try:
        report = json.loads(proc.stdout)
        summary = (report[0] if isinstance(report, list) else report).get("summary", {})
        counts = (f"{summary.get('passed', '?')} passed / {summary.get('failed', '?')} failed "
                  f"check results")
    except (ValueError, AttributeError, IndexError):
        counts = f"unparsed output, exit {proc.returncode}"
    config = path.parent / "tootcheck.toml"
    config.write_text("[external_secrets]\n\"mastodon-secrets\" = [" +
                      ", ".join(f'"{k}"' for k in MASTODON_SECRET_KEYS) + "]\n")
    ours, ours_wall, ours_cpu = timed(
        [sys.executable, "-m", "tootcheck.cli", "policy", str(path), "--no-waivers",
         "--config", str(config), "--format", "json"], cwd=ROOT)
    try:
        data = json.loads(ours.stdout)
        ours_counts = (f"{sum(r['matched'] for r in data['rules'])} rule x subject results, "
                       f"verdict {data['verdict']}")
    except ValueError:
        ours_counts = f"unparsed output, exit {ours.returncode}"
    print(f"  {'':30}{'wall s':>8}{'CPU s':>8}")
    print(f"  {'Checkov ' + CHECKOV_VERSION:30}{checkov_wall:8.2f}{checkov_cpu:8.2f}  "
          f"({counts}; {how})")
    print(f"  {'tootcheck policy':30}{ours_wall:8.2f}{ours_cpu:8.2f}  ({len(all_rules())} rules, "
          f"{ours_counts})")
    print(f"  Checkov uses {checkov_cpu / ours_cpu:.1f}x the CPU time of tootcheck policy")


def main() -> int:
    if not REFERENCE.exists():
        print(f"bench: {REFERENCE} is missing (make render)", file=sys.stderr)
        return 2
    config = replace(PolicyConfig(), external_secrets={"mastodon-secrets": MASTODON_SECRET_KEYS})
    rules = all_rules()
    print(f"Policy engine: {len(rules)} rules incl. strict schema validation, in process, "
          f"CPU time per evaluation, best of 3 rounds")
    engine_seconds(synthetic_docs(24), config, rules)  # warm the schema caches
    print(f"  {'objects':>8}  {'CPU s':>8}  {'objects/s':>10}  {'ms/object':>10}")
    per_object = []
    for n in SIZES:
        s = engine_seconds(synthetic_docs(n), config, rules)
        per_object.append(s / n)
        print(f"  {n:>8}  {s:>8.3f}  {n / s:>10.0f}  {1000 * s / n:>10.3f}")
    spread = max(per_object) / min(per_object)
    print(f"  cost per object varies by x{spread:.2f} from {SIZES[0]} to {SIZES[-1]} objects: "
          f"{'linear' if spread < 1.5 else 'NOT linear'}")
    docs = synthetic_docs(1000)
    CACHE.mkdir(exist_ok=True)
    path = CACHE / "bench" / "bundle-1000.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    started = time.process_time()
    parse_stream(path.read_text(), "bundle-1000.yaml")
    print(f"  parsing the 1000-object YAML ({path.stat().st_size // 1024} KiB): "
          f"{time.process_time() - started:.3f} s CPU")
    compare_checkov(path, 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
