"""pytest hooks: policy (placeholder until implemented)."""
