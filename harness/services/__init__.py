"""What every stage uses: settings, errors, folders, the plugin registry, the cache, the results store and its records, worker pools, progress."""
