"""Schemathesis over the whole OpenAPI document: no operation answers 5xx to any parameters or
body its description allows (or that it should refuse), called through WSGI with a commune
agent's valid token. A bounded, derandomized number of examples per operation."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from schemathesis.checks import not_a_server_error  # noqa: E402

from tests.ged.conftest import make_pdf, upload  # noqa: E402

HOST = "commune-a.mutualis.test"
EXAMPLES = 12
COVERAGE_CASES = 60


@pytest.mark.slow
@pytest.mark.parametrize("role", ["admin", "elu"])
def test_no_operation_answers_a_server_error(app, tenant_a, api_client, make_token, monkeypatch,
                                             role):
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "1000000 per minute")
    token, _user = make_token(tenant_a, role)
    writer, _w = make_token(tenant_a, "admin")
    # Something to list and page through, and a real id for the {document_id} paths.
    document_id = upload(api_client(tenant_a, writer), make_pdf(), "a.pdf").get_json()["id"]
    doc = api_client(tenant_a).get("/api/v1/openapi.json").get_json()
    schema = schemathesis.openapi.from_dict(doc)
    schema.app = app
    headers = {"Authorization": f"Bearer {token}", "Host": HOST}
    failures: list[str] = []
    statuses: dict[int, int] = {}
    seen: set[str] = set()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategies = [operation.as_strategy(),
                      operation.as_strategy(schemathesis.GenerationMode.NEGATIVE)]
        if "{document_id}" in operation.path:
            strategies.append(operation.as_strategy(path_parameters={"document_id": document_id}))
            strategies.append(operation.as_strategy(schemathesis.GenerationMode.NEGATIVE,
                                                    path_parameters={"document_id": document_id}))

        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                             database=None, print_blob=False,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=hypothesis.strategies.one_of(strategies))
        def run(case):
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            seen.add(case.operation.label)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - gather every operation's failure
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
        # The coverage phase: deterministic boundary and just-outside values for every
        # parameter (huge integers, empty and odd strings, wrong types), a bounded number.
        config = schema.config.generation_for(operation=operation, phase="coverage")
        modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
        for n, case in enumerate(schema.iter_coverage_cases(operation, generation_modes=modes,
                                                            generation_config=config)):
            if n >= COVERAGE_CASES:
                break
            if n % 2 and "document_id" in (case.path_parameters or {}):
                case.path_parameters["document_id"] = document_id  # a real one, every other case
            try:
                response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{operation.label} (coverage): {str(exc)[:1500]}")
                break
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert operations >= 25 and len(seen) == operations  # every operation was really called
    assert statuses.get(200, 0) > 30 and statuses.get(422, 0) > 30, statuses
    assert failures == [], "\n\n".join(failures)
