"""The harness version: part of every study key and of every result's provenance (its own
module, so the engine reads it without importing the package's public API)."""

__version__ = "0.1.0"
# The core's featurisation code, in every feature and study key (here, not in features.py,
# so that identities do not import the prepare stage).
FEATURE_CODE_VERSION = "2"  # 2: checksummed chunks (harness.services.cache)
