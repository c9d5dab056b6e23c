"""Every table, imported in one place so Alembic and the services see one metadata."""

from server.checkpoints.models import Checkpoint
from server.datasets.models import Dataset
from server.db import Base
from server.jobs.models import Job, JobStatus, Result
from server.views.models import SharedView

__all__ = ["Base", "Checkpoint", "Dataset", "Job", "JobStatus", "Result", "SharedView"]
