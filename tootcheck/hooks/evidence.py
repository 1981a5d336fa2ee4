"""pytest hooks: evidence (placeholder until implemented)."""
