"""The upgrade rehearsal's verification (runs last in --mode=rehearsal)."""
