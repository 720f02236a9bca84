"""Extension instances only; create_app wires them to the application.

flask-smorest's Api holds one OpenAPI document per instance, so create_app makes one per
application (tests build several) instead of sharing a module-level instance.
"""

from __future__ import annotations

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from app.db import Base

# Objects stay readable after commit, so responses serialize without reloading them.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(compare_type=True, render_as_batch=True)
