"""pytest hooks: modes (placeholder until implemented)."""
