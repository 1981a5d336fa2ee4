"""Subcommands of the ``tootcheck`` console script, one module each."""
