"""The parties the credit tests record events about, and by."""

from __future__ import annotations

import pytest
from flask import Flask

from app.parties.models import Role
from tests.factories import Member, make_member


@pytest.fixture
def regulator(app: Flask) -> Member:
    return make_member(Role.REGULATOR)


@pytest.fixture
def operator(app: Flask) -> Member:
    return make_member(Role.OPERATOR)


@pytest.fixture
def merchant(app: Flask) -> Member:
    return make_member(Role.MERCHANT)
