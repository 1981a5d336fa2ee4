"""Mail suite: Sidekiq's mailers queue delivers to the in-cluster Mailpit (kind only)."""
