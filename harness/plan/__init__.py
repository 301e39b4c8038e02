"""Stage 1, pure: which studies a config asks for, and what decides each number."""
