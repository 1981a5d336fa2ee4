"""Federation suite: Sidekiq's push queue delivers signed activities to the in-cluster peer."""
