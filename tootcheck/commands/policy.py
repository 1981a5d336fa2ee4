"""``tootcheck policy``: the policy gate from the command line.

    tootcheck policy PATH...     rendered YAML file(s), a directory of YAML, a kustomize
                                 directory (rendered with kubectl kustomize --enable-helm),
                                 or - for stdin; the inputs form one bundle, except that
                                 overlay sources given beside the reference are gated on
                                 their own (ids suffixed @<name>)
    tootcheck policy --live [--kubeconfig K] [--context C] [--namespace N]
    --profile baseline|hardened  which rules run (default: the config's, else baseline)

Exit codes: 0 pass, 1 violations (ERROR findings, expired waivers; WARN too with
--strict), 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from tootcheck.errors import BadInput
from tootcheck.policy.bundle import collector_paused
from tootcheck.policy.config import PROFILES, PolicyConfig
from tootcheck.policy.config_loader import load_project
from tootcheck.policy.engine import PolicyRun, evaluate
from tootcheck.policy.registry import Rule, all_rules
from tootcheck.policy.render_summary import as_json, human
from tootcheck.policy.sarif import write_sarif
from tootcheck.policy.sources import load_bundle, split_overlays
from tootcheck.policy.streamrun import stream_gate
from tootcheck.policy.waivers import Waivers, load_waivers
from tootcheck.rendering import display_path
from tootcheck.settings import Settings, active
from tootcheck.versions import KUBERNETES


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "policy", help="run the policy rules over manifests or a live cluster",
        description="Run the policy catalogue over rendered manifests, a kustomize directory, "
                    "stdin, or the live objects of a cluster. Exit 0 pass, 1 violations, "
                    "2 bad input.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="YAML file, directory of YAML, kustomize directory, or - for stdin")
    live = p.add_argument_group("live cluster")
    live.add_argument("--live", action="store_true", help="check the live objects of a cluster")
    live.add_argument("--kubeconfig", type=Path, default=None,
                      help="kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    live.add_argument("--context", default=None, help="kube context (default: current)")
    live.add_argument("--namespace", default=None,
                      help="namespace to check (default: the policy config's, mastodon)")
    p.add_argument("--strict", action="store_true", help="WARN findings fail too")
    p.add_argument("--profile", choices=PROFILES, default=None,
                   help="rules to run: baseline (breaks Mastodon, loses data, leaks secrets, "
                        "misroutes traffic) or hardened (adds the hardening preferences); "
                        "default: the config's, else baseline")
    p.add_argument("--kube-version", default=KUBERNETES,
                   help=f"Kubernetes version for strict schema validation (default {KUBERNETES})")
    p.add_argument("--waivers", type=Path, default=None,
                   help="YAML waivers file (default: the config file's waivers)")
    p.add_argument("--no-waivers", action="store_true", help="apply no waivers")
    p.add_argument("--config", type=Path, default=None,
                   help="config file (default: tootcheck.toml, or [tool.tootcheck] in "
                        "pyproject.toml, searched upward from the working directory)")
    p.add_argument("--sarif", type=Path, default=None, metavar="FILE",
                   help="write SARIF 2.1.0 here")
    p.add_argument("--junit", type=Path, default=None, metavar="FILE",
                   help="write JUnit XML here")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="stdout format (default table)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.live and args.paths:
        raise BadInput("give manifest PATHs or --live, not both")
    if not args.live and not args.paths:
        raise BadInput("nothing to check: give PATH(s) (or - for stdin) or --live")
    if not args.live and (args.kubeconfig or args.context or args.namespace):
        raise BadInput("--kubeconfig/--context/--namespace need --live")
    rules = all_rules()
    project = load_project(args.config, known_rules=[r.id for r in rules])
    config = project.config
    if active().domain != Settings.domain:  # TOOTCHECK_DOMAIN beats the config file
        config = replace(config, domain=active().domain)
    if args.profile is not None:
        config = replace(config, profile=args.profile)
    waivers: Waivers | None = project.waivers
    if args.waivers is not None:
        waivers = load_waivers(args.waivers, [r.id for r in rules])
    if args.no_waivers:
        waivers = None
    if args.live:
        from tootcheck.policy.live import load_live_bundle

        bundle = load_live_bundle(args.kubeconfig, args.context,
                                  args.namespace or config.namespace, config)
        run_ = evaluate([bundle], config, waivers=waivers, kube_version=args.kube_version,
                        rules=rules)
    else:
        run_ = _offline(args.paths, config, waivers, args.kube_version, rules)
    out = as_json(run_, args.strict) if args.format == "json" else human(run_, args.strict)
    sys.stdout.write(out)
    for writer, target in ((write_sarif, args.sarif), (_write_junit, args.junit)):
        if target is not None:
            try:
                writer(run_, target, args.strict)
            except OSError as exc:
                raise BadInput(f"cannot write {target}: {exc.strerror}") from None
    return run_.exit_code(args.strict)


def _write_junit(run_: PolicyRun, path: Path, strict: bool) -> Path:
    # Imported when asked: xml.sax brings in urllib, 25 ms of every run's start-up.
    from tootcheck.policy.junit import write_junit

    return write_junit(run_, path, strict)


def _offline(paths: list[str], config: PolicyConfig, waivers: Waivers | None,
             kube_version: str, rules: list[Rule]) -> PolicyRun:
    """The run over files: a single large one a few namespaces at a time."""
    if len(paths) == 1:
        path = Path(paths[0])
        why: list[str] = []
        with collector_paused(keep=True):  # its results live until the process ends
            run_ = stream_gate(path, display_path(path), config, waivers=waivers,
                               kube_version=kube_version, rules=rules, why=why)
        if run_ is not None:
            return run_
        for reason in why:  # a large file: its memory is that of all its objects
            print(f"tootcheck: {display_path(path)} is gated whole, not a few namespaces "
                  f"at a time: {reason}", file=sys.stderr)
    # Parsed objects hold no reference cycles and live until the process ends.
    with collector_paused(keep=True):
        loaded = load_bundle(paths, default_namespace=config.namespace)
        bundles = split_overlays(loaded, config.is_overlay_source)
    return evaluate(bundles, config, waivers=waivers, kube_version=kube_version, rules=rules)
