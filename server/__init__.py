"""PruneScope server: FastAPI API, database models and the job lifecycle."""
