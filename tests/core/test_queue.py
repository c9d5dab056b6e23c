"""The same queue contract on every backend: SQLite file and Redis."""

from __future__ import annotations

import pytest

from server.queue import MESSAGE_NAME, JobQueue, make_huey


@pytest.fixture(params=["sqlite", "redis"])
def queue(request, tmp_path) -> JobQueue:
    url = (
        f"sqlite:///{tmp_path / 'q.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("redis_url")
    )
    q = JobQueue(make_huey(url))
    q.flush()
    return q


def test_ids_come_out_in_order_once(queue):
    for job_id in (3, 1, 2):
        queue.enqueue(job_id)
    assert queue.pending_ids() == {1, 2, 3}
    assert [queue.dequeue() for _ in range(4)] == [3, 1, 2, None]


def test_messages_are_json_not_pickle(queue):
    queue.enqueue(42)
    raw = queue.huey.storage.dequeue()
    assert raw.startswith(b"{") and b'"args": [42]' in raw
    assert MESSAGE_NAME.encode() in raw


def test_foreign_or_pickled_messages_are_discarded_not_executed(queue):
    import pickle

    queue.huey.storage.enqueue(pickle.dumps({"evil": True}))
    queue.huey.storage.enqueue(b'{"id": "x", "name": "os.system", "args": ["rm"]}')
    queue.enqueue(7)
    assert queue.dequeue() is None
    assert queue.dequeue() is None
    assert queue.dequeue() == 7


def test_only_integer_ids_are_accepted(queue):
    with pytest.raises((TypeError, ValueError)):
        queue.enqueue("1; drop table")
