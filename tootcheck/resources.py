"""The data the installed package ships, found without the repository.

``tootcheck/data/`` holds the test infrastructure the kind bring-up applies
(``infra/``, ``kind/``), the peer program and the project-written CRD schemas
(``schemas/``). In the repository these are symlinks to ``manifests/``, the single
source; building the wheel copies the files in (pyproject ``package-data``).
Everything the operator owns (their manifests, renders, config, waivers) is found
from the working directory instead (:mod:`tootcheck.config_file`).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from tootcheck.errors import BadInput


def data_root() -> Path:
    """``tootcheck/data`` of the installed package (a directory on disk)."""
    # A wheel or an editable install keeps the package on disk; a zipped import does not.
    root = Path(str(resources.files("tootcheck") / "data"))
    if not root.is_dir():
        raise BadInput(f"tootcheck's package data is missing ({root}): reinstall tootcheck with "
                       f"pip into a virtual environment")
    return root


def data_path(*parts: str) -> Path:
    """A file or directory of the package data, e.g. ``data_path("infra", "nfs")``."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        raise BadInput(f"tootcheck's package data lacks {'/'.join(parts)}: the installation is "
                       f"incomplete; reinstall tootcheck")
    return path


def infra_dir(name: str) -> Path:
    """A kustomization of the kind test infrastructure: ``infra/<name>`` or ``kind/<name>``."""
    return data_path(*name.split("/"))


def kind_config() -> Path:
    return data_path("kind", "cluster.yaml")


def schema_dir() -> Path:
    return data_path("schemas")


def peer_program() -> Path:
    return data_path("infra", "fediverse-peer", "fediverse_peer.py")


def blueprint() -> Path:
    return data_path("infra", "authentik", "blueprints", "mastodon.yaml")


def cache_dir() -> Path:
    """tootcheck's cache (schema digests, the bench's inputs and Checkov, the test peers'
    PostgreSQL template): $TOOTCHECK_CACHE_DIR, else the user cache directory."""
    override = os.environ.get("TOOTCHECK_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tootcheck"))
