"""Persistence suite: markers written before pod and NFS restarts are all there after."""
