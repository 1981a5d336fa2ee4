"""The pre-upgrade rehearsal: deploy FROM on kind, seed data, upgrade to TO the way the
manifests do it, run every suite, verify the seeded data, report migration time and
downtime.

- :mod:`~tootcheck.rehearsal.plan`: versions, refusals, the upgrade-path table (data),
  requirement checks on the renders, the step list (pure);
- :mod:`~tootcheck.rehearsal.verify`: judging the upgraded pod (images, migration
  time, start order, Recreate overlap) from its status (pure);
- :mod:`~tootcheck.rehearsal.downtime`: the bounded background poller and the pure
  computation of unavailability windows;
- :mod:`~tootcheck.rehearsal.checks`: the live checks ``rehearsal.upgrade`` and
  ``rehearsal.seeds_intact``;
- :mod:`~tootcheck.rehearsal.run`: thin orchestration over ``tootcheck.kube`` and
  ``tootcheck.checks.markers``.

Documented in docs/modes.md.
"""
