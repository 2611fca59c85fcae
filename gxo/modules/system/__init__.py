"""System layer modules."""
