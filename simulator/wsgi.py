"""The simulator's Flask app: JWKS (Forge's, and each Isolated Cloud label's at
``/ic/<label>/.well-known/jwks.json``), Confluence, GraphQL gateway, the personal data reporting
API, the control API (``/_sim/``), the trigger/webhook player (``simulator.triggers``, also under
``/_sim/``) and the admin page host (``simulator.host``, at ``/``)."""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from simulator.confluence import make_confluence_blueprint
from simulator.control import make_control_blueprint
from simulator.edge import error, json_response
from simulator.gateway import make_gateway_blueprint
from simulator.host import make_host_blueprint
from simulator.privacy import make_privacy_blueprint
from simulator.state import PlatformState
from simulator.triggers import make_triggers_blueprint


def create_simulator_app(platform: PlatformState) -> Flask:
    app = Flask("access_desk_simulator")

    @app.get("/.well-known/jwks.json")
    def jwks() -> Response:
        response = json_response(platform.keys.jwks())
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    @app.get("/ic/<label>/.well-known/jwks.json")
    def ic_jwks(label: str) -> Response:
        return json_response(platform.ic_signing_keys(label).jwks())

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return error(exc.code or 500, exc.description or exc.name)

    app.register_blueprint(make_confluence_blueprint(platform))
    app.register_blueprint(make_gateway_blueprint(platform))
    app.register_blueprint(make_privacy_blueprint(platform))
    app.register_blueprint(make_control_blueprint(platform), url_prefix="/_sim")
    app.register_blueprint(make_triggers_blueprint(platform), url_prefix="/_sim")
    app.register_blueprint(make_host_blueprint(platform))
    return app
