"""pytest hooks: reports (placeholder until implemented)."""
