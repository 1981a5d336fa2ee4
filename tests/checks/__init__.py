"""Live checks proven against real local peers."""
