"""Test layer modules."""
