"""Render-vs-live drift against a target."""
