"""A refused apply names `file: field: reason` for every problem and changes nothing."""

from __future__ import annotations

import pytest

from saas.tenancy.manifests import contrast_ratio, normalise_origin, parse_manifest, parse_size
from tests.tenancy.manifest_files import manifest_data, siren_for, to_toml, write_manifest


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
     "beta.toml", "population", "doit être un entier entre 0 et 100000000"),
    ("bad_kind", lambda d: write_manifest(d, "beta", 2, kind="region"),
     "beta.toml", "kind", "valeur « region » inconnue"),
    # Values that pass the type checks but do not fit the database (a traceback before).
    ("population_overflow", lambda d: write_manifest(d, "beta", 2, population=10**20),
     "beta.toml", "population", "doit être un entier entre 0 et 100000000"),
    ("population_past_integer", lambda d: write_manifest(d, "beta", 2, population=2**31),
     "beta.toml", "population", "doit être un entier entre 0 et 100000000"),
    ("quota_overflow", lambda d: write_manifest(d, "beta", 2, quota=10**30),
     "beta.toml", "quota", "trop grand : 1 Pio (2^50 octets) au plus"),
    ("quota_overflow_in_units", lambda d: write_manifest(d, "beta", 2, quota="99999999999999 TiB"),
     "beta.toml", "quota", "trop grand : 1 Pio"),
    ("quota_infinite_float", lambda d: write_manifest(d, "beta", 2, quota="9" * 400 + " TiB"),
     "beta.toml", "quota", "taille illisible « " + "9" * 60 + "… »"),
    ("quota_wrong_type", lambda d: write_manifest(d, "beta", 2, quota=["5 GiB"]),
     "beta.toml", "quota", "une taille s'écrit comme « 20 GiB »"),
    ("name_nul", lambda d: write_manifest(d, "beta", 2, name="Be\x00ta"),
     "beta.toml", "name", "contient un caractère de contrôle (U+0000), interdit"),
    ("logo_text_nul", lambda d: write_manifest(d, "beta", 2, branding={"logo_text": "Be\x00ta"}),
     "beta.toml", "branding.logo_text", "contient un caractère de contrôle (U+0000)"),
    ("name_too_long", lambda d: write_manifest(d, "beta", 2, name="x" * 100_000),
     "beta.toml", "name", "trop long (200 caractères au plus)"),
    ("kind_as_table", lambda d: write_manifest(d, "beta", 2, kind={"a": 1}),
     "beta.toml", "kind", "valeur « {'a': 1} » inconnue"),
    ("kind_with_escape", lambda d: write_manifest(d, "beta", 2, kind="\x1b[2J"),
     "beta.toml", "kind", "valeur « \\x1b[2J » inconnue"),
    ("long_unknown_module", lambda d: write_manifest(d, "beta", 2, modules=["y" * 100_000]),
     "beta.toml", "modules", "module(s) inconnu(s) : " + "y" * 60 + "… ; modules disponibles"),
    ("siren_as_date", lambda d: _write_raw(d, "beta.toml", to_toml(manifest_data("beta", 2, siren=None))
                                           .replace("[branding]", "siren = 2026-12-08\n[branding]")),
     "beta.toml", "siren", "doit être une chaîne de caractères"),
    ("impossible_date", lambda d: _write_raw(d, "beta.toml", to_toml(manifest_data("beta", 2))
                                             .replace("[branding]", "population_le = 2026-02-30\n[branding]")),
     "beta.toml", "ligne 13", "syntaxe TOML invalide (colonne 17) : Invalid date or datetime"),
    ("deep_nesting", lambda d: _write_raw(d, "beta.toml", "x = " + "[" * 50_000 + "]" * 50_000 + "\n"),
     "beta.toml", "syntaxe", "syntaxe TOML refusée : tableaux ou tables imbriqués trop profondément"),
    ("huge_integer_literal", lambda d: _write_raw(d, "beta.toml", "population = " + "9" * 5000 + "\n"),
     "beta.toml", "syntaxe", "syntaxe TOML refusée : nombre entier trop long"),
    ("huge_file", lambda d: _write_raw(d, "beta.toml", to_toml(manifest_data("beta", 2)) + "#" * 300_000),
     "beta.toml", "fichier", "trop gros (262\u00a0ko au plus pour un manifeste)"),
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
