"""`saas tenants list [--json]`."""

from __future__ import annotations

import json

from tests.tenancy.manifest_files import write_manifest


def test_list_json_describes_every_tenant(cli, tmp_path):
    write_manifest(tmp_path, "alpha", 1, domains=["demarches.alpha.example"])
    write_manifest(tmp_path, "beta", 2, origins=[])
    assert cli("tenants", "apply", str(tmp_path)).exit_code == 0
    cli("tenants", "suspend", "beta")

    result = cli("tenants", "list", "--json")

    assert result.exit_code == 0
    rows = {row["slug"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"alpha", "beta"}
    assert rows["alpha"] == {
        "slug": "alpha", "name": "Commune Alpha", "kind": "commune", "insee": "44801",
        "siren": rows["alpha"]["siren"], "population": 500, "departement": "44", "arrondissement": 1,
        "status": "active", "origins": ["https://www.alpha.example"],
        "domains": ["demarches.alpha.example"], "modules": ["ged", "actes"], "quota_bytes": 5 * 2**30,
    }
    assert rows["beta"]["status"] == "suspended"
    assert rows["beta"]["origins"] == []


def test_list_for_people_shows_slug_name_insee_and_french_status(cli, tenant_a, make_tenant):
    make_tenant("calme", name="Calme", status="suspended", insee="44321")

    result = cli("tenants", "list")

    lines = result.stdout.splitlines()
    assert lines[0].split() == ["slug", "nom", "INSEE", "statut"]
    assert any(line.split() == ["calme", "Calme", "44321", "suspendue"] for line in lines)
    assert any(line.startswith("commune-a") and line.endswith("active") for line in lines)


def test_list_json_is_an_empty_list_without_tenants(cli):
    assert json.loads(cli("tenants", "list", "--json").stdout) == []
