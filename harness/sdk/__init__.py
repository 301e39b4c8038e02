"""What plugins build on: entry contracts, hooks, metrics, the neural training engines behind harness.torch."""
