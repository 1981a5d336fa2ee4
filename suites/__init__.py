"""The conformance suites: thin tests that call tootcheck checks against a target."""
