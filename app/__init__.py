"""The data-trading marketplace service: the application factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path
from werkzeug.middleware.proxy_fix import ProxyFix

from config import (
    INSTANCE_DIR,
    Config,
    ProductionConfig,
    config_from_env,
    normalize_database_url,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: type[Config] | None = None, **overrides: Any) -> Flask:
    """Build the application: configuration, extensions, error handlers, routes, CLI, scheduler."""
    from app import cli, jobs, scheduler  # noqa: F401  (jobs registers the plumbing's jobs)
    from app.api import BEARER_SCHEME, Api
    from app.errors import register_error_handlers
    from app.extensions import db, migrate
    from app.limits import init_limits
    from app.log import jobs as log_jobs  # noqa: F401  (registers the sealer's job)
    from app.log.routes import blp as log_blp
    from app.log.routes import evidence_blp
    from app.logs import configure_logging
    from app.metrics import init_metrics
    from app.parties.routes import blp as parties_blp
    from app.routes import audit_blp, ops
    from app.security import init_security_headers
    from credit import jobs as credit_jobs  # noqa: F401  (registers the domain's jobs)
    from credit.routes import blp as credit_blp
    from licenses import jobs as license_jobs  # noqa: F401  (registers the domain's jobs)
    from licenses.routes import blp as licenses_blp
    from listings import jobs as listing_jobs  # noqa: F401  (registers the domain's jobs)
    from listings.artifact_routes import blp as artifacts_blp
    from listings.pricing_routes import blp as guide_prices_blp
    from listings.rights_routes import blp as rights_blp
    from listings.routes import blp as listings_blp
    from listings.routes import rules_blp
    from orders import jobs as order_jobs  # noqa: F401  (registers the domain's jobs)
    from orders.demand_routes import blp as demands_blp
    from orders.routes import blp as orders_blp
    from oversight.routes import blp as public_blp
    from settlement import jobs as settlement_jobs  # noqa: F401  (registers the domain's jobs)
    from settlement.routes import blp as settlement_blp

    config = config or config_from_env()
    if issubclass(config, ProductionConfig):
        config.validate()
    app = Flask(__name__, instance_path=str(INSTANCE_DIR), static_folder=None)
    app.config.from_object(config)
    app.config.update(overrides)
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"])
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        INSTANCE_DIR.mkdir(exist_ok=True)
    idle = app.config["DATABASE_IDLE_IN_TRANSACTION_SECONDS"]
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") and idle:
        options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        connect_args = options.get("connect_args", {})
        timeout = f"-c idle_in_transaction_session_timeout={idle * 1000}"
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "connect_args": {
            **connect_args, "options": " ".join(filter(None, [connect_args.get("options"),
                                                               timeout]))}}
    if app.config["TRUSTED_PROXY_HOPS"]:
        # The client's address and scheme as the trusted proxies saw them, never further back:
        # whatever a client writes into X-Forwarded-For itself comes before their entries.
        hops = app.config["TRUSTED_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    configure_logging(app)
    init_limits(app)
    init_security_headers(app)
    init_metrics(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    api = Api(app)
    app.extensions["api"] = api
    register_error_handlers(app)
    api.spec.components.security_scheme(
        BEARER_SCHEME, {"type": "http", "scheme": "bearer", "description": "An API key"})

    @app.get("/docs/assets/<path:filename>")
    def swagger_ui_assets(filename: str) -> Any:
        """Swagger UI's files, shipped in the swagger-ui-bundle package (works offline)."""
        return send_from_directory(swagger_ui_path, filename, max_age=86400)

    for blueprint in (ops, parties_blp, audit_blp, listings_blp, rules_blp, credit_blp,
                      guide_prices_blp, artifacts_blp, orders_blp, demands_blp, licenses_blp,
                      settlement_blp, log_blp, evidence_blp, rights_blp, public_blp):
        api.register_blueprint(blueprint)

    cli.register(app)
    scheduler.init_scheduler(app)
    return app
