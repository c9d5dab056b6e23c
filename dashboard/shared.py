"""The read-only app behind share links, mounted at ``/s``: ``/s/<token>`` shows one frozen compare view.

It is a Dash app of its own, so a share token can reach no callback but the ones registered here, and none
of these writes: the owner's upload, delete, job and share controls are absent from its pages (the ids in
:data:`WRITE_CONTROLS` are cut from every view) and their callbacks do not exist in this app.

Every request is scoped before a callback runs (:func:`_scope_request`):
- the page ``/s/<token>`` resolves its token (unknown, revoked or expired: the same 404 page) and gives the
  browser a cookie ``ps_view_<id>`` holding it, path ``/s/``, HttpOnly, SameSite=Strict;
- a callback reads only what the views of the valid tokens in those cookies name
  (``flask.g.prunescope_scope``, which every function of :mod:`dashboard.data` applies), and the page's own
  render callback only what the token in its URL names. Without a valid token, callbacks get a 404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import flask
from dash import Dash, Input, Output, _get_app, _get_paths, _pages, dcc, html
from dash.development.base_component import Component

from dashboard import context, data, plotly_bundle
from dashboard.components.hessian import PER_LAYER_BUTTON
from dashboard.components.landscape import register_landscape_callbacks
from dashboard.components.overview import QUEUE_ROW, register_overview_callbacks
from dashboard.components.robustness import register_robustness_callbacks
from dashboard.downloads import ROUTE, register_download_callbacks
from dashboard.state import COMPARE_TABS, parse_tab
from server.config import Settings
from server.db import session_scope
from server.errors import NotFound
from server.ratelimit import RateLimiter
from server.views import service as views
from server.views.scope import NOTHING, Scope, of_state

PREFIX = "/s/"
COOKIE_PREFIX = "ps_view_"
COOKIE_MAX_AGE = 30 * 24 * 3600
MAX_COOKIES = 50  # share cookies read per request
# the owner's controls cut from shared views: writes, and the report (an owner route; not in this app)
WRITE_CONTROLS = frozenset({"compare-queue", PER_LAYER_BUTTON, QUEUE_ROW, "compare-report"})
# served without a token: files, the app's structure, and the CSV conversion of a posted figure (no data read)
STATIC = (
    "_dash-component-suites/",
    "assets/",
    "_favicon.ico",
    "_dash-layout",
    "_dash-dependencies",
    ROUTE.split("/")[0] + "/",
)
NOT_FOUND_PAGE = "<!doctype html><title>Not found</title><h1>Not found</h1>"


def create_shared_dash(settings: Settings, limiter: RateLimiter | None = None) -> Dash:
    context.set_settings(settings, limiter)
    # Dash() makes itself the app that get_relative_path, get_asset_url and pages answer for, process-wide:
    # give that back to the owner's app, whose pages and callbacks build links with them
    saved = (_get_app.APP, _get_paths.CONFIG, _pages.CONFIG)
    bundle = plotly_bundle.find_bundle(settings.plotlyjs_dir)
    app = Dash(
        "dashboard.shared",
        requests_pathname_prefix=PREFIX,
        routes_pathname_prefix="/",
        use_pages=False,
        title="PruneScope · Shared view",
        suppress_callback_exceptions=True,
        update_title=None,
        assets_folder=str(Path(__file__).resolve().parent / "assets"),
        meta_tags=plotly_bundle.meta_tags(bundle),
    )
    if saved[0] is not None:
        _get_app.APP, _get_paths.CONFIG, _pages.CONFIG = saved
    app.layout = _layout
    app.server.before_request(_scope_request)
    app.server.after_request(_remember_token)
    plotly_bundle.register_bundle_route(app, bundle)  # under _prunescope/, which _scope_request lets through
    _register(app)
    return app


def _layout() -> html.Div:
    return html.Div(
        [
            dcc.Location(id="share-url"),
            html.Header(
                [
                    html.Span("PruneScope", className="ps-brand"),
                    html.Nav(
                        html.Span("shared view · read-only", className="ps-nav-link"), className="ps-nav"
                    ),
                ],
                className="ps-header",
            ),
            html.Main(
                [
                    html.H1(id="share-title"),
                    dcc.Tabs(
                        id="share-tab",
                        children=[dcc.Tab(label=label, value=name) for name, label in COMPARE_TABS.items()],
                    ),
                    html.Div(id="compare-content"),
                    dcc.Store(id="compare-state"),
                ],
                className="ps-main",
            ),
        ],
        className="ps-app",
    )


def _token_of(path: str | None) -> str:
    """The token segment of ``/s/<token>`` (browser paths) or ``/<token>`` (paths inside the mount)."""
    rest = (path or "").removeprefix(PREFIX).strip("/")
    return rest.split("/", 1)[0]


def _resolve(token: str):
    """``(id, state, expires_at)`` of the active view of ``token``, else :class:`NotFound`."""
    return next(iter(_resolve_all([token]).values()))


def _resolve_all(tokens: list[str]) -> dict[str, tuple]:
    """The active views of those ``tokens`` that have one, by token, in one session (:class:`NotFound`
    when none has)."""
    found = {}
    with session_scope(context.get_settings().resolved_database_url, write=False) as session:
        for token in tokens:
            try:
                view = views.resolve(session=session, token=token)
            except NotFound:
                continue
            found[token] = (view.id, dict(view.state), view.expires_at)
    if not found:
        raise NotFound(views.NOT_FOUND)
    return found


def _scope_request():
    """Before every request of this app: check its token(s) and record what it may read."""
    path = flask.request.path.lstrip("/")
    if path == "":
        return flask.Response(NOT_FOUND_PAGE, status=404, mimetype="text/html")
    if path.startswith(STATIC):
        return None
    if path.startswith("_dash-update-component"):
        scope = _cookie_scope()
        if scope == NOTHING:
            return flask.jsonify({"detail": views.NOT_FOUND}), 404
        setattr(flask.g, data.SCOPE_KEY, scope)
        return None
    try:  # the page itself: /s/<token>
        view_id, _state, expires = _resolve(_token_of(path))
    except NotFound:
        return flask.Response(NOT_FOUND_PAGE, status=404, mimetype="text/html")
    flask.g.share_cookie = (view_id, _token_of(path), expires)
    return None


def _cookie_scope() -> Scope:
    """What the valid share tokens among the request's cookies may read together."""
    cookies = flask.request.cookies
    tokens = [cookies[n] for n in cookies if n.startswith(COOKIE_PREFIX)][:MAX_COOKIES]
    try:
        found = _resolve_all(tokens)
    except NotFound:
        return NOTHING
    scope = NOTHING
    for _id, state, _expires in found.values():
        scope = scope.union(of_state(state))
    return scope


def _remember_token(response: flask.Response) -> flask.Response:
    found = flask.g.get("share_cookie")
    if found:
        view_id, token, expires = found
        max_age = COOKIE_MAX_AGE
        if expires is not None:
            left = (views.aware(expires) - datetime.now(UTC)).total_seconds()
            max_age = max(1, min(max_age, int(left)))
        response.set_cookie(
            f"{COOKIE_PREFIX}{view_id}",
            token,
            max_age=max_age,
            path=PREFIX,
            httponly=True,
            samesite="Strict",
            secure=flask.request.scheme == "https",
        )
    return response


def without_write_controls(node):
    """The component tree with every control of :data:`WRITE_CONTROLS` removed."""
    if isinstance(node, list | tuple):
        return [without_write_controls(n) for n in node if not _is_write_control(n)]
    if isinstance(node, Component):
        children = getattr(node, "children", None)
        if isinstance(children, list | tuple | Component):
            kept = without_write_controls(children if isinstance(children, list | tuple) else [children])
            node.children = kept if isinstance(children, list | tuple) else (kept[0] if kept else None)
    return node


def _is_write_control(node) -> bool:
    return isinstance(node, Component) and getattr(node, "id", None) in WRITE_CONTROLS


def _register(app: Dash) -> None:
    from dashboard.pages.compare import view_content

    register_landscape_callbacks(app)
    register_robustness_callbacks(app)
    register_download_callbacks(app)
    register_overview_callbacks(app, writable=False)

    @app.callback(
        Output("share-title", "children"),
        Output("share-tab", "value"),
        Output("compare-state", "data"),
        Input("share-url", "pathname"),
    )
    def open_view(pathname):
        view = _view_or_none(pathname)
        if view is None:
            return "This link is not valid (revoked, expired or mistyped).", None, None
        _id, state, _expires = view
        title = f"Shared comparison: {len(data.list_checkpoints())} checkpoint(s)"
        return title, parse_tab(state.get("tab")), _state(state)

    @app.callback(
        Output("compare-content", "children"),
        Input("share-tab", "value"),
        Input("share-url", "pathname"),
    )
    def render(tab, pathname):
        view = _view_or_none(pathname)
        if view is None or tab is None:
            return []
        state = {**_state(view[1]), "tab": parse_tab(tab)}
        content, _pending = view_content(state, view[1].get("settings") or {})
        return without_write_controls(content)


def _state(state: dict) -> dict:
    return {
        "ids": list(state.get("ids") or []),
        "dataset": state.get("dataset"),
        "tab": parse_tab(state.get("tab")),
    }


def _view_or_none(pathname: str | None):
    """The view of the token in this page's URL, its scope now in force for the request; else ``None``."""
    try:
        view = _resolve(_token_of(pathname))
    except NotFound:
        return None
    setattr(flask.g, data.SCOPE_KEY, of_state(view[1]))
    return view
