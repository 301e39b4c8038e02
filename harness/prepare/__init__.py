"""Stage 2: load, label, split and featurise only what is pending."""
