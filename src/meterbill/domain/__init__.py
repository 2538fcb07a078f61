"""Pure billing rules: no I/O, no imports from adapters, services or entrypoints."""
