"""pytest hooks: guards (placeholder until implemented)."""
