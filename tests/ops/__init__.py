"""Per-op parity tests: the case table (cases.py) run forward, backward and against torch."""
