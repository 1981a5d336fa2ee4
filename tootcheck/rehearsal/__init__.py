"""The pre-upgrade rehearsal: deploy FROM on kind, seed data, upgrade to TO the way the
manifests do it, run every suite, verify the seeded data, report migration time and
downtime; optionally on a copy of production, at scale, and back again.

- :mod:`~tootcheck.rehearsal.table` and ``release_lines.yaml`` (package data): the
  cited upgrade-path table, loaded and checked (every claim names its source);
- :mod:`~tootcheck.rehearsal.plan`: versions, refusals, the cited procedure and its
  text (``tootcheck preflight rehearse --plan``) (pure);
- :mod:`~tootcheck.rehearsal.renders`: requirement checks on the FROM and TO renders,
  immutable fields, PostgreSQL major change, renamed workload (pure);
- :mod:`~tootcheck.rehearsal.verify`: judging the upgraded pod (images, migration
  time, start order, Recreate overlap) from its status (pure);
- :mod:`~tootcheck.rehearsal.failfast`: a failed migration stops the wait, its log in
  the message; suites skipped after a failed upgrade (pure);
- :mod:`~tootcheck.rehearsal.downtime`: the bounded background poller (health,
  streaming, a service read through PostgreSQL and Redis) and the windows;
- :mod:`~tootcheck.rehearsal.dataset`: ``--seed-scale``, counts, actor keys, a held
  Sidekiq job, queue latency;
- :mod:`~tootcheck.rehearsal.rollback` and :mod:`~tootcheck.rehearsal.way_back`: the
  backup before the upgrade and the restore after it (``--rehearse-rollback``);
- :mod:`~tootcheck.rehearsal.production`: the operator's dump and secrets;
- :mod:`~tootcheck.rehearsal.checks`: the live checks ``rehearsal.upgrade``,
  ``rehearsal.seeds_intact``, ``rehearsal.data_intact``, ``rehearsal.rollback``;
- :mod:`~tootcheck.rehearsal.run` (with ``renderer``, ``access``, ``data_steps``):
  thin orchestration over ``tootcheck.kube`` and ``tootcheck.checks.markers``.

Documented in docs/modes.md.
"""
