"""Reusable test helpers (servers started by the tests on loopback)."""
