"""Views domain."""
