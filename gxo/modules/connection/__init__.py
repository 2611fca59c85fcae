"""Connection layer modules."""
