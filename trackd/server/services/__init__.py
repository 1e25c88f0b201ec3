"""One servicer per proto service; each authenticates, validates, then calls storage."""
