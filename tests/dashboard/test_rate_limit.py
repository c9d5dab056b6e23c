"""Job submissions from the dashboard draw on the same per-client budget as the API's."""

from __future__ import annotations

import flask
import pytest

from dashboard import context, data
from server.ratelimit import RateLimiter


@pytest.fixture
def restore_context():
    saved = context._settings, context._limiter
    yield
    context._settings, context._limiter = saved


def test_dashboard_job_submissions_are_rate_limited_per_client(sqlite_url, make_settings, restore_context):
    settings = make_settings(sqlite_url)
    context.set_settings(settings, RateLimiter(2, 60.0))
    app = flask.Flask("t")
    for _ in range(2):  # within the budget: the request reaches the service (and its own refusal)
        with app.test_request_context(environ_base={"REMOTE_ADDR": "10.0.0.1"}):
            with pytest.raises(data.ActionError, match="needs a dataset_id"):
                data.submit_jobs("evaluate", [999], None)
    with app.test_request_context(environ_base={"REMOTE_ADDR": "10.0.0.1"}):
        with pytest.raises(data.ActionError, match="too many job submissions"):
            data.submit_jobs("evaluate", [999], None)
    with app.test_request_context(environ_base={"REMOTE_ADDR": "10.0.0.2"}):  # another client
        with pytest.raises(data.ActionError, match="needs a dataset_id"):
            data.submit_jobs("evaluate", [999], None)
