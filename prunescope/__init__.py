"""PruneScope: compare a dense network and its pruned variants."""

__version__ = "0.1.0"
