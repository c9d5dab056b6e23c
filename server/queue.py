"""The queue instance: Huey carrying job ids, and nothing else.

The database row is the source of truth for a job (see ``server/jobs/leases.py``);
a lost or duplicated message is harmless because a worker must claim the row's
lease before it runs anything. Messages are JSON, never pickle.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.registry import Message
from huey.serializer import Serializer

logger = logging.getLogger(__name__)

RUN_JOB = "run_job"
MESSAGE_NAME = f"{__name__}.{RUN_JOB}"  # Huey prefixes task names with their module


class JsonMessageSerializer(Serializer):
    """Encodes Huey's task messages as JSON; anything else on the queue is refused."""

    def _serialize(self, data) -> bytes:
        if not isinstance(data, Message):
            raise TypeError("only task messages go on the queue")
        return json.dumps({"id": data.id, "name": data.name, "args": list(data.args or ())}).encode()

    def _deserialize(self, data: bytes):
        obj = json.loads(data)
        if obj.get("name") != MESSAGE_NAME or not all(type(a) is int for a in obj.get("args", ())):
            raise ValueError(f"unexpected queue message {obj!r:.200}")
        return Message(id=obj["id"], name=obj["name"], args=tuple(obj["args"]), kwargs={})


def _run_job_message(job_id: int) -> None:  # pragma: no cover - never executed through Huey
    raise RuntimeError("jobs are executed by workers.runner, which reads the id from the message")


class JobQueue:
    """Enqueue and dequeue job ids."""

    def __init__(self, huey: Huey):
        self.huey = huey
        self._task = huey.task(name=RUN_JOB)(_run_job_message)

    def enqueue(self, job_id: int) -> None:
        self.huey.enqueue(self._task.s(int(job_id)))

    def dequeue(self) -> int | None:
        try:
            task = self.huey.dequeue()
        except (ValueError, TypeError, KeyError):
            logger.warning("discarded a malformed queue message", exc_info=True)
            return None
        return None if task is None else int(task.args[0])

    def pending_ids(self) -> set[int]:
        return {int(t.args[0]) for t in self.huey.pending()}

    def ping(self) -> bool:
        self.huey.pending_count()
        return True

    def flush(self) -> None:
        self.huey.flush()


def make_huey(url: str) -> Huey:
    serializer = JsonMessageSerializer()
    parsed = urlparse(url)
    if parsed.scheme in ("redis", "rediss", "unix"):
        return RedisHuey("prunescope", url=url, results=False, serializer=serializer)
    if parsed.scheme == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("prunescope", filename=str(path), results=False, serializer=serializer, timeout=30)
    raise ValueError(f"unsupported queue URL scheme {parsed.scheme!r}; use sqlite:///path or redis://host")


@lru_cache(maxsize=8)
def get_queue(url: str) -> JobQueue:
    return JobQueue(make_huey(url))
