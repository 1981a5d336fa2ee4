"""Web push suite: the VAPID key and Web Push delivery to the in-cluster receiver."""
