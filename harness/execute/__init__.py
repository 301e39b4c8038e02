"""Stage 3: one study per (combination, seed) on an executor: tune, refit, score, keep the fitted model as data."""
