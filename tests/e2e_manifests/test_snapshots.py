"""The committed renders in manifests/rendered/ say where they come from.

Their freshness (a re-render gives the same text) is tests/test_render.py's job, for every
snapshot in tootcheck.rendering.SNAPSHOTS."""

from __future__ import annotations

import pytest

from tootcheck.rendering import HEADER, SNAPSHOTS


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda s: s.name)
def test_snapshot_header_names_its_source(snapshot):
    first = snapshot.output_path.read_text().splitlines(keepends=True)[0]
    assert first == HEADER.format(source=snapshot.source)
