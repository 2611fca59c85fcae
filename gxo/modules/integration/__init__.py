"""Integration layer modules."""
