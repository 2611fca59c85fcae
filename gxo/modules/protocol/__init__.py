"""Protocol layer modules."""
