"""PruneScope dashboard: Dash pages served by the same process as the API."""
