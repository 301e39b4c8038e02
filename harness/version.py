"""The harness version: part of every study key and of every result's provenance (its own
module, so the engine reads it without importing the package's public API)."""

__version__ = "0.1.0"
