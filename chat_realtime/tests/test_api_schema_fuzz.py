"""schemathesis against the OpenAPI schema: every endpoint, authenticated, random and edge-case input.

No request may end in a 5xx, and every documented response must match the schema.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework_simplejwt.tokens import AccessToken

app = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app)


@pytest.fixture(autouse=True)
def _keep_the_test_database_open():
    """As Django's test client does: requests must not close the connection the test's transaction lives on."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(make_user, befriend):
    """A user with a friend and a chat, so ids in the schema can hit real rows too."""
    me = make_user(username="fuzzer")
    befriend(me, make_user(username="friend"))
    return {"Authorization": f"Bearer {AccessToken.for_user(me)}"}


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_endpoint_fails_on_any_input_and_answers_match_the_schema(case, bearer, settings):
    settings.RATE_LIMITS = {name: None for name in settings.RATE_LIMITS}
    response = case.call(headers=bearer)

    case.validate_response(
        response,
        checks=(schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance),
    )
