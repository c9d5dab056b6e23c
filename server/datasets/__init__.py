"""Datasets domain."""
