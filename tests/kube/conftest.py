"""Fixtures for the kube tests: each runs in its own temporary directory, and a fake
kind binary."""

from __future__ import annotations

from pathlib import Path

import pytest

FAKE_KIND = """#!/bin/sh
# A stand-in for kind: remembers clusters in $STATE, logs every call.
STATE="{state}"
echo "$@" >> "$STATE.calls"
case "$1 $2" in
  "get clusters") cat "$STATE" 2>/dev/null; exit 0 ;;
  "create cluster") name=$(echo "$@" | sed 's/.*--name=\\([^ ]*\\).*/\\1/'); echo "$name" >> "$STATE";
                    echo "Creating cluster" >&2; exit 0 ;;
  "export kubeconfig") exit 0 ;;
  "delete cluster") : > "$STATE"; exit 0 ;;
esac
echo "ERROR: unknown command $1" >&2; exit 1
"""


@pytest.fixture
def kind_bin(tmp_path) -> Path:
    path = tmp_path / "kind"
    path.write_text(FAKE_KIND.format(state=tmp_path / "clusters"))
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pytest-kind's KindCluster makes .pytest-kind/ in the cwd
