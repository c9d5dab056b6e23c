"""PruneScope workers: trusted architectures, pruning, training and the analyses the queue runs."""
