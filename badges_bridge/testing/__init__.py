"""Fake provider servers and test helpers, shared by the test suite and the demo.

Nothing here is used in production code paths.
"""
