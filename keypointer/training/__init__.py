"""Training (layer L5): the loop, its set-up, the recipe, the time budget, optimisers, runs."""
