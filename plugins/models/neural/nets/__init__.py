"""The torch modules behind the neural model entries.

Kept apart from the entries so that listing or validating plugins, featurising and
reading leaderboards never import torch (seconds): an entry imports its network only
when it builds one."""
