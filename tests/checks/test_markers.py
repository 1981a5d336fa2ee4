"""tootcheck.checks.markers: the marker set, its verdicts, and both verifiers on a real stack.

Pure parts on literal data (JSON round trip without secrets, the scheduled-status
verdict with restart windows, counts, the PNG). Then markers written through the
REST peer are checked through REST and in a real PostgreSQL by SQL, and a real
loss (the database comes back empty) is reported marker by marker.
"""

from __future__ import annotations

import json
import secrets
import shutil
import struct
import zlib
from collections.abc import Iterator

import psycopg
import pytest

from tests.peers.databases import PostgresPeer, RedisPeer, free_port, scratch_dir
from tests.peers.mastodon_rest import MastodonRestPeer, running_rest_peer
from tootcheck.checks.markers import (
    AccountMarker,
    FollowMarker,
    MarkerSet,
    MediaMarker,
    Outcome,
    ScheduledMarker,
    StatusMarker,
    cleanup_markers,
    judge_scheduled,
    marker_png,
    result_of,
    service_time,
    verify_markers,
    verify_markers_db,
    write_markers,
)
from tootcheck.clients.mastodon import api_as
from tootcheck.target import Target

DUE = 1_800_000_000.0
SCHEDULED = ScheduledMarker("7", "1", "test", "tootcheck-scheduled-abc", DUE)


def sample_set() -> MarkerSet:
    return MarkerSet(
        run_id="abc", target="kind://tootcheck", written_at=DUE - 400,
        accounts=[AccountMarker("test", "1", "tester"), AccountMarker("second", "2", "other")],
        statuses=[StatusMarker("10", "1", "test", "tootcheck-marker-abc", "https://x/@t/10")],
        media=[MediaMarker("20", "1", "test", "10",
                           "https://kirchner.social/system/media_attachments/files/000/000/000/"
                           "000/000/020/original/abc.png", "ab" * 32, 812)],
        scheduled=[SCHEDULED],
        follows=[FollowMarker("second", "2", "1")],
    )


# -------------------------------------------------------------------- pure


def test_marker_set_round_trips_through_json() -> None:
    markers = sample_set()
    again = MarkerSet.from_json(markers.to_json())
    assert again == markers
    assert again.count == 6
    assert [kind for kind, _ in again.items()] == [
        "account", "account", "status", "media", "scheduled", "follow"]
    assert again.media[0].file_name == "abc.png"
    assert "token" not in markers.to_json()
    older = json.loads(markers.to_json())
    del older["follows"][0]["preexisting"]  # a set written before that field existed
    assert MarkerSet.from_dict(older) == markers


@pytest.mark.parametrize(("still", "published", "now", "outages", "state"), [
    (True, None, DUE - 60, (), "found"),            # not due yet
    (True, None, DUE + 5, (), "found"),             # due, within the grace
    (True, None, DUE + 30, (), "late"),             # overdue
    (True, None, DUE + 30, [(DUE - 5, DUE + 25)], "found"),  # it fell in a restart
    (False, DUE + 2, DUE + 60, (), "found"),        # published on time
    (False, DUE + 40, DUE + 60, (), "late"),        # published late
    (False, DUE + 40, DUE + 60, [(DUE, DUE + 35)], "found"),  # late only by the restart
    (False, None, DUE + 60, (), "lost"),            # neither scheduled nor published
])
def test_scheduled_verdict(still: bool, published: float | None, now: float,
                           outages: list[tuple[float, float]], state: str) -> None:
    outcome = judge_scheduled(SCHEDULED, now=now, still_scheduled=still, published_at=published,
                              grace_s=10.0, outages=outages)
    assert outcome.state == state, outcome


def test_service_time_subtracts_merged_outages() -> None:
    assert service_time(0, 100, [(10, 30), (20, 40), (90, 200)]) == 100 - 30 - 10
    assert service_time(50, 40) == 0.0


def test_result_counts_and_fault_codes() -> None:
    markers = sample_set()
    outcomes = [Outcome(k, m.key, "found", "present") for k, m in markers.items()]
    outcomes[3] = Outcome("media", "media 20", "changed", "media 20 bytes changed")
    outcomes[4] = Outcome("scheduled", "scheduled status 7", "late", "published 99s late")
    outcomes[5] = Outcome("follow", "follow 2->1", "lost", "follow 2->1 is gone")
    result = result_of(outcomes, markers, check="markers.test")
    assert result.metrics == {"markers_written": 6.0, "markers_found": 3.0, "markers_lost": 3.0}
    assert set(result.fault_codes) == {"media-changed", "scheduled-late", "marker-lost"}
    ok = result_of([Outcome(k, m.key, "found", "") for k, m in markers.items()], markers)
    assert ok.ok and ok.metrics["markers_lost"] == 0


def test_marker_png_is_a_valid_unique_image() -> None:
    png = marker_png("one", size=16)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png != marker_png("two")
    offset, chunks = 8, {}
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset:offset + 4])
        kind, data = png[offset + 4:offset + 8], png[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        chunks[kind] = data
        offset += 12 + length
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (16, 16)
    assert len(zlib.decompress(chunks[b"IDAT"])) == 16 * (1 + 16 * 3)


# ------------------------------------------------------------- real stack
# (that the SQL verifier still finds every marker after a real restart and a
# crash of PostgreSQL is proven in tests/checks/test_persistence.py, on the
# stack that restarts it anyway)


@pytest.fixture(scope="module")
def rest(postgres: PostgresPeer, redis_peer: RedisPeer
         ) -> Iterator[tuple[MastodonRestPeer, Target, str]]:
    root = scratch_dir("markers")
    name = f"markers_{secrets.token_hex(4)}"
    dsn = postgres.create_database(name)
    with running_rest_peer(dsn, redis_peer.url(13), root) as (peer, target):
        yield peer, target, name
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def markers(rest: tuple[MastodonRestPeer, Target, str]) -> MarkerSet:
    return write_markers(rest[1], scheduled_in_s=3600)


def test_markers_found_by_rest_and_sql(rest: tuple[MastodonRestPeer, Target, str],
                                       markers: MarkerSet) -> None:
    via_rest = verify_markers(rest[1], markers)
    via_sql = verify_markers_db(rest[0].dsn, markers)
    for result in (via_rest, via_sql):
        assert result.ok, result.summary
        assert result.metrics == {"markers_written": 6.0, "markers_found": 6.0,
                                  "markers_lost": 0.0}


def test_cleanup_removes_what_it_made_and_keeps_an_older_follow(
        rest: tuple[MastodonRestPeer, Target, str], markers: MarkerSet) -> None:
    target = rest[1]
    again = write_markers(target, scheduled_in_s=3600)  # `markers` already made the follow
    assert again.follows[0].preexisting
    assert cleanup_markers(target, again) == []
    gone = verify_markers(target, again)
    assert gone.metrics["markers_lost"] == 3  # status, its media, the scheduled status
    kept = api_as(target, "second").account_relationships(again.follows[0].target_account_id)
    assert kept[0]["following"]


def test_unreachable_database_counts_every_marker_lost(markers: MarkerSet) -> None:
    result = verify_markers_db(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", markers)
    assert result.metrics["markers_lost"] == 6
    assert set(result.fault_codes) == {"marker-lost"}
    assert "cannot query PostgreSQL" in result.faults[0].message


def test_database_that_comes_back_empty_is_detected(
        rest: tuple[MastodonRestPeer, Target, str], markers: MarkerSet,
        postgres: PostgresPeer) -> None:
    # the database is gone (a volume that was not persistent, a restore from before the
    # markers) and the migration (db:prepare) creates an empty schema again
    peer, target, name = rest
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    peer.migrate()
    result = verify_markers_db(peer.dsn, markers)
    assert not result.ok
    assert result.metrics == {"markers_written": 6.0, "markers_found": 0.0, "markers_lost": 6.0}
    assert set(result.fault_codes) == {"marker-lost"}
    assert any("no accounts row" in f.message for f in result.faults)
    via_rest = verify_markers(target, markers)
    assert via_rest.metrics["markers_lost"] == 6  # the tokens are gone too
    assert any("401" in f.message for f in via_rest.faults)
