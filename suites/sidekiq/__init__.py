"""Sidekiq suite: the pod's Sidekiq process, its queues, and a real job round trip."""
