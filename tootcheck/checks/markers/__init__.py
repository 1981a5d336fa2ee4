"""Seeded data that must survive restarts and upgrades: write it, record it, check it.

A :class:`MarkerSet` is written through Mastodon's REST API before a restart (or
an upgrade) and checked afterwards, either through REST (:func:`verify_markers`,
which also compares media bytes downloaded from their URLs) or directly in
PostgreSQL (:func:`verify_markers_db`, tables and columns of Mastodon's
``db/schema.rb``). Both return a :class:`CheckResult` whose metrics count
markers written, found and lost. The set serialises to JSON without secrets (it
names account roles, never tokens), so the upgrade rehearsal can write markers
with one release and check them with the next.

Kinds and where Mastodon keeps them:
- account: ``accounts`` row (and the role's token in ``oauth_access_tokens``);
- status: ``statuses`` row;
- media: ``media_attachments`` row plus the file under ``public/system`` (NFS);
  Mastodon re-encodes uploads, so the checksum is of the bytes served *after*
  upload, not of the bytes sent;
- scheduled status: a ``scheduled_statuses`` row (PostStatusService#schedule_status!);
  Scheduler::ScheduledStatusesScheduler (every 5 min, config/sidekiq.yml) puts
  those due within ScheduledStatus::MINIMUM_OFFSET (5 min) into Sidekiq's
  ``schedule`` sorted set in Redis via PublishScheduledStatusWorker.perform_at,
  which deletes the row and posts the status when due. So it is either still
  scheduled, or published (by then it should be on time, within a grace);
- follow: ``follows`` row.

The package: ``model`` (the set, the verdicts, the image), ``rest`` (write, verify and
clean up through REST), ``sql`` (verify in PostgreSQL).
"""

from tootcheck.checks.markers.model import (
    CHECK,
    DEFAULT_PUBLISH_GRACE_S,
    DEFAULT_SCHEDULED_IN_S,
    FAULT_FOR_STATE,
    SCHEDULE_MINIMUM_OFFSET_S,
    SCHEDULER_INTERVAL_S,
    AccountMarker,
    FollowMarker,
    Marker,
    MarkerSet,
    MarkerWriteError,
    MediaMarker,
    Outage,
    Outcome,
    ScheduledMarker,
    State,
    StatusMarker,
    judge_scheduled,
    marker_png,
    outcomes_evidence,
    record,
    result_of,
    service_time,
    tally,
)
from tootcheck.checks.markers.rest import (
    as_epoch,
    cleanup_markers,
    download,
    rest_outcomes,
    verify_markers,
    write_markers,
)
from tootcheck.checks.markers.sql import (
    db_outcomes,
    verify_markers_db,
)

__all__ = [
    "CHECK",
    "DEFAULT_PUBLISH_GRACE_S",
    "DEFAULT_SCHEDULED_IN_S",
    "FAULT_FOR_STATE",
    "SCHEDULER_INTERVAL_S",
    "SCHEDULE_MINIMUM_OFFSET_S",
    "AccountMarker",
    "FollowMarker",
    "Marker",
    "MarkerSet",
    "MarkerWriteError",
    "MediaMarker",
    "Outage",
    "Outcome",
    "ScheduledMarker",
    "State",
    "StatusMarker",
    "as_epoch",
    "cleanup_markers",
    "db_outcomes",
    "download",
    "judge_scheduled",
    "marker_png",
    "outcomes_evidence",
    "record",
    "rest_outcomes",
    "result_of",
    "service_time",
    "tally",
    "verify_markers",
    "verify_markers_db",
    "write_markers",
]
