"""pytest hook modules, loaded by ``tootcheck.plugin`` through ``pytest_plugins``.

Each module holds the hooks of one concern; the logic they call lives elsewhere
in the package so it can be tested without pytest.
"""
