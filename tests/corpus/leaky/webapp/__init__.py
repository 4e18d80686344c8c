"""A small package whose helper module leaks (run with -m webapp.server)."""
