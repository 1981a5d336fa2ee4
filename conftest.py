"""Loads the fixtures/ package as a plugin; nothing else."""

pytest_plugins = [
    "fixtures.target",
    "fixtures.cluster",
    "fixtures.rehearsal",
    "pytester",  # the plugin's own tests run inner pytest sessions
]
