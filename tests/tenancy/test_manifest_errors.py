"""A refused apply names `file: field: reason` for every problem and changes nothing."""

from __future__ import annotations

import pytest

from saas.tenancy.manifests import contrast_ratio, normalise_origin, parse_manifest, parse_size
from tests.tenancy.manifest_files import siren_for, write_manifest


def _write_raw(directory, name, text):
    (directory / name).write_text(text, encoding="utf-8")
    return directory / name


# (case, how to break the directory, file name, field, expected start of the reason)
CASES = [
    ("siren_luhn", lambda d: write_manifest(d, "beta", 2, siren="214495300"),
     "beta.toml", "siren", "« 214495300 » : clé de contrôle (Luhn) invalide"),
    ("siren_not_commune", lambda d: write_manifest(d, "beta", 2, siren=siren_for(5, prefix="24")),
     "beta.toml", "siren", "le SIREN d'une commune commence par 21"),
    ("siren_as_integer", lambda d: write_manifest(d, "beta", 2, siren=214495301),
     "beta.toml", "siren", "écrivez le SIREN entre guillemets"),
    ("insee_format", lambda d: write_manifest(d, "beta", 2, insee="4X123"),
     "beta.toml", "insee", "« 4X123 » : un code INSEE comporte 5 caractères"),
    ("insee_missing", lambda d: write_manifest(d, "beta", 2, insee=None),
     "beta.toml", "insee", "champ obligatoire manquant"),
    ("departement_mismatch", lambda d: write_manifest(d, "beta", 2, departement="85"),
     "beta.toml", "departement", "« 85 » ne correspond pas au code INSEE 44802 (département 44)"),
    ("unknown_field", lambda d: write_manifest(d, "beta", 2, populaton=12),
     "beta.toml", "populaton", "champ inconnu (vouliez-vous dire « population » ?)"),
    ("unknown_branding_field", lambda d: write_manifest(d, "beta", 2, branding={"color": "#1F5C99"}),
     "beta.toml", "branding.color", "champ inconnu"),
    ("origin_with_path", lambda d: write_manifest(d, "beta", 2, origins=["https://www.beta.example/mairie"]),
     "beta.toml", "origins", "« https://www.beta.example/mairie » : une origine n'a ni chemin"),
    ("origin_plain_http", lambda d: write_manifest(d, "beta", 2, origins=["http://www.beta.example"]),
     "beta.toml", "origins", "« http://www.beta.example » : http:// n'est admis que pour localhost"),
    ("duplicate_slug", lambda d: write_manifest(d, "alpha", 2, filename="beta.toml"),
     "beta.toml", "slug", "« alpha » est déjà déclaré dans"),
    ("duplicate_siren", lambda d: write_manifest(d, "beta", 2, siren=siren_for(801)),
     "beta.toml", "siren", f"« {siren_for(801)} » est déjà déclaré dans"),
    ("duplicate_insee", lambda d: write_manifest(d, "beta", 2, insee="44801"),
     "beta.toml", "insee", "« 44801 » est déjà déclaré dans"),
    ("duplicate_domain", lambda d: (write_manifest(d, "alpha", 1, domains=["mairie.example"]),
                                    write_manifest(d, "beta", 2, domains=["Mairie.Example"])),
     "beta.toml", "domains", "« mairie.example » est déjà déclaré dans"),
    ("domain_under_platform", lambda d: write_manifest(d, "beta", 2, domains=["beta.mutualis.test"]),
     "beta.toml", "domains", "« beta.mutualis.test » est sous le domaine de la plateforme"),
    ("reserved_slug", lambda d: write_manifest(d, "admin", 3),
     "admin.toml", "slug", "« admin » est réservé par la plateforme"),
    ("bad_slug", lambda d: write_manifest(d, "Beta_2", 3),
     "Beta_2.toml", "slug", "« Beta_2 » : lettres minuscules"),
    ("toml_syntax", lambda d: _write_raw(d, "beta.toml", 'slug = "beta"\nname = "Beta\n'),
     "beta.toml", "ligne 2", "syntaxe TOML invalide"),
    ("file_name_not_slug", lambda d: write_manifest(d, "beta", 2, filename="Beta.toml"),
     "Beta.toml", "slug", "le fichier doit s'appeler « beta.toml »"),
    ("low_contrast", lambda d: write_manifest(d, "beta", 2, branding={"primary_color": "#FFCC00"}),
     "beta.toml", "branding.primary_color", "contraste insuffisant avec le blanc : 1,51:1, il faut au moins 4,5:1"),
    ("bad_colour", lambda d: write_manifest(d, "beta", 2, branding={"primary_color": "bleu"}),
     "beta.toml", "branding.primary_color", "une couleur s'écrit « #RRGGBB »"),
    ("unknown_module", lambda d: write_manifest(d, "beta", 2, modules=["ged", "compta"]),
     "beta.toml", "modules", "module(s) inconnu(s) : compta"),
    ("bad_quota", lambda d: write_manifest(d, "beta", 2, quota="beaucoup"),
     "beta.toml", "quota", "taille illisible « beaucoup »"),
    ("negative_population", lambda d: write_manifest(d, "beta", 2, population=-3),
     "beta.toml", "population", "doit être un entier supérieur ou égal à 0"),
    ("bad_kind", lambda d: write_manifest(d, "beta", 2, kind="region"),
     "beta.toml", "kind", "valeur « region » inconnue"),
]


@pytest.mark.parametrize("case,breaks,filename,field,reason", CASES, ids=[c[0] for c in CASES])
def test_invalid_manifest_is_reported_precisely_and_nothing_changes(
        cli, manifest_dir, db_state, case, breaks, filename, field, reason):
    assert cli("tenants", "apply", str(manifest_dir)).exit_code == 0
    before = db_state()
    # A valid change that must not be applied either: all or nothing.
    write_manifest(manifest_dir, "alpha", 1, population=4321)
    if case != "file_name_not_slug" and case != "duplicate_slug":
        (manifest_dir / "beta.toml").unlink()
    breaks(manifest_dir)

    result = cli("tenants", "apply", str(manifest_dir), "--prune")

    assert result.exit_code == 1, result.output
    expected = f"{manifest_dir / filename}: {field}: {reason}"
    assert any(line.startswith(expected) for line in result.stderr.splitlines()), result.stderr
    assert "Aucune modification" in result.stderr
    assert "created" not in result.stdout
    assert db_state() == before


def test_every_error_of_every_file_is_listed_at_once(cli, manifest_dir):
    write_manifest(manifest_dir, "alpha", 1, siren="214495300", population="beaucoup")
    write_manifest(manifest_dir, "beta", 2, insee="99999")

    result = cli("tenants", "apply", str(manifest_dir))

    lines = [line for line in result.stderr.splitlines() if ".toml: " in line]
    assert [line.split(": ")[1] for line in lines] == ["siren", "population", "departement"]


def test_siren_held_by_a_tenant_outside_the_directory_is_refused(cli, manifest_dir, make_tenant, db_state):
    make_tenant("ancienne", siren=siren_for(802), insee="44999")
    before = db_state()

    result = cli("tenants", "apply", str(manifest_dir))

    assert result.exit_code == 1
    assert (f"{manifest_dir / 'beta.toml'}: siren: « {siren_for(802)} » appartient déjà à la "
            "collectivité « ancienne » (active)") in result.stderr
    assert db_state() == before


def test_empty_or_missing_directory_is_an_error(cli, tmp_path):
    missing = cli("tenants", "apply", str(tmp_path / "nope"))
    empty = cli("tenants", "apply", str(tmp_path), "--prune")

    assert missing.exit_code == 1 and "dossier: introuvable" in missing.stderr
    assert empty.exit_code == 1 and f"{tmp_path}: dossier: aucun manifeste" in empty.stderr


@pytest.mark.parametrize("color,ratio", [("#FFFFFF", 1.0), ("#000000", 21.0), ("#767676", 4.54)])
def test_contrast_ratio_follows_wcag(color, ratio):
    assert contrast_ratio(color) == pytest.approx(ratio, abs=0.01)


@pytest.mark.parametrize("text,expected", [
    ("20 GiB", 20 * 2**30), ("500 Mo", 500 * 10**6), ("2 To", 2 * 10**12), ("1,5 Gio", 3 * 2**29),
    (1024, 1024), ("0", 0),
])
def test_sizes_are_read_in_english_and_french(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("raw,expected", [
    ("https://WWW.Mairie.example/", "https://www.mairie.example"),
    ("https://www.mairie.example:443", "https://www.mairie.example"),
    ("https://www.mairie.example:8443", "https://www.mairie.example:8443"),
    ("http://localhost:8080", "http://localhost:8080"),
    ("https://mairie-été.example", "https://xn--mairie-t-h1ab.example"),
])
def test_origins_are_normalised(raw, expected):
    assert normalise_origin(raw) == expected


@pytest.mark.parametrize("raw", [
    "www.mairie.example", "ftp://mairie.example", "https://user@mairie.example",
    "https://mairie.example?x=1", "https://mairie.example#top", "https://10.0.0.1",
])
def test_bad_origins_are_refused(raw):
    with pytest.raises(ValueError):
        normalise_origin(raw)


@pytest.mark.parametrize("domain,reason", [
    ("10.0.0.1", "une adresse IP n'est pas un nom d'hôte"),
    ("intranet.localhost", "« intranet.localhost » ne peut pas servir de domaine personnalisé"),
    ("mairie", "« mairie » n'est pas un nom d'hôte valide (ex. demarches.ma-commune.fr)"),
    ("-mairie.example", "« -mairie.example » n'est pas un nom d'hôte valide (ex. demarches.ma-commune.fr)"),
])
def test_bad_custom_domains_are_refused(tmp_path, domain, reason):
    path = write_manifest(tmp_path, "alpha", 1, domains=[domain])

    manifest, errors = parse_manifest(path, base_domain="mutualis.test")

    assert manifest is None
    assert [str(e) for e in errors] == [f"{path}: domains: {reason}"]


def test_epci_needs_no_insee_but_a_siren_starting_with_2(tmp_path):
    path = write_manifest(tmp_path, "interco", 1, kind="epci", insee=None, siren=siren_for(7, prefix="24"))

    manifest, errors = parse_manifest(path)

    assert errors == []
    assert (manifest.kind, manifest.insee, manifest.status) == ("epci", None, None)
