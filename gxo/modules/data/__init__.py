"""Data layer modules."""
