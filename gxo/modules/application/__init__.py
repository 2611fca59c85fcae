"""Application layer modules."""
