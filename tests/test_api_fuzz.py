"""The OpenAPI schema fuzzed with schemathesis: no input makes the API answer with a server error (5xx).

Bounded: a fixed number of examples per operation, so it stays a short test.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from aggregator.api import Aggregator  # noqa: E402
from aggregator.config import parse_config  # noqa: E402
from aggregator.web.app import create_app  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import webdata  # noqa: E402

# The schema is read from the app when the module loads (schemathesis parametrizes from it), so the database
# is built here, in a folder removed when the session ends.
_folder = Path(tempfile.mkdtemp(prefix="aggregator-fuzz-"))
atexit.register(shutil.rmtree, _folder, ignore_errors=True)
_data = webdata.build(str(_folder / "fuzz.db"))
app = create_app(Aggregator(database=_data.database, config=parse_config(webdata.FEEDS_YAML)))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_is_a_server_error(case):
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    assert response.status_code < 500
