"""Per-op parity tests: the case table (cases/, one module per op family) run forward, backward and against torch."""
