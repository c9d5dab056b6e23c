"""Checkpoints domain."""
