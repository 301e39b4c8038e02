"""Reports drawn from stored results: statistics (intervals, paired tests), figures, HTML."""
