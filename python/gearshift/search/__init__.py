"""Search: partition frontiers, composition, pipeline frontier, refinement, selection."""
