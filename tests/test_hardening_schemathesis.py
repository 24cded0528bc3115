"""Schemathesis over the app's own OpenAPI spec: every operation, as admin and as every role.

Each operation gets a bounded number of generated requests per role (positive and negative
data); every response must be below 500 and match the schema the operation declares for
its status. The count of requests tried is printed. ``scripts/fuzz-api`` runs the same with
many more examples (``EARWITNESS_FUZZ_EXAMPLES``).

The data set behind the app is the demo (calls, stereo recordings, a case with evidence and
a track), so ids 1..3 name real rows and the generated requests reach past the 404s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from earwitness.api import create_app
from earwitness.config import load_settings
from earwitness.models import ROLES
from earwitness.runtime import Runtime
from tests.accounts_helpers import BASE_URL, user_with_key

pytestmark = pytest.mark.slow

# Bounded for the default test run (~1 minute); the script raises it.
EXAMPLES = int(os.environ.get("EARWITNESS_FUZZ_EXAMPLES", "10"))
ROLE_EXAMPLES = int(os.environ.get("EARWITNESS_FUZZ_ROLE_EXAMPLES", "3"))
# Server-sent events never end: their stream is tested apart (test_calls_api), not fuzzed.
STREAMING = {("GET", "/api/live/stream")}
# Generated ids are mostly small integers: the fuzzing users come after these decoys so
# that a generated PATCH /api/users/{id} or DELETE /api/keys/{id} rarely disables them.
DECOY_USERS = 40


@dataclass
class FuzzTally:
    tried: int = 0
    failures: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def fuzz_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    from earwitness.demo.loader import load_demo

    root: Path = tmp_path_factory.mktemp("fuzz")
    runtime = Runtime.open(
        load_settings(
            data_dir=root / "data",
            demo="never",
            worker_mode="off",  # no worker: /api/health is "ok" (an inline one not running: 503)
            sms_reply_secret="fuzz-gateway-secret",  # unset, the webhook answers 503 by design
        )
    )
    try:
        load_demo(runtime)
        for n in range(DECOY_USERS):
            user_with_key(runtime, "agent", username=f"decoy-{n}")
        yield runtime
    finally:
        runtime.close()


def _fuzz_operation(
    app: FastAPI,
    operation: schemathesis.APIOperation,
    key: str,
    examples: int,
    tally: FuzzTally,
) -> None:
    headers = {"X-API-Key": key}

    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(
        case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
        | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    )
    def run(case: schemathesis.Case) -> None:
        tally.tried += 1
        try:
            # An exception escaping the app is what a server answers with 500.
            response = case.call(base_url=BASE_URL, headers=headers, app=app)
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )
        except (Exception, BaseExceptionGroup) as exc:  # one line per failure, keep going
            first = (str(exc).strip().splitlines() or [""])[0]
            line = f"{operation.label}: {type(exc).__name__}: {first[:200]}"
            if line not in tally.seen:
                tally.seen.add(line)
                tally.failures.append(line + f"\n    {case.as_curl_command(headers=headers)}")

    run()


def test_every_operation_every_role_no_5xx_and_schema_kept(
    fuzz_runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(runtime=fuzz_runtime)
    # The default allowed hosts refuse the test client's "testserver": load the spec directly.
    schema = schemathesis.openapi.from_dict(app.openapi())
    keys = {role: user_with_key(fuzz_runtime, role, username=f"fuzz-{role}")[1] for role in ROLES}
    tally = FuzzTally()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in STREAMING:
            continue
        operations += 1
        for role, key in keys.items():
            examples = EXAMPLES if role == "admin" else ROLE_EXAMPLES
            _fuzz_operation(app, operation, key, examples, tally)
    with capsys.disabled():  # the count shows in a quiet run too
        print(
            f"\nschemathesis: {tally.tried} cases over {operations} operations x "
            f"{len(keys)} roles, {len(tally.failures)} failures",
            end="",
        )
    assert operations > 50
    assert not tally.failures, "\n".join(tally.failures)
