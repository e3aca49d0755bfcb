"""SAAS_AUDIT_KEY: a key of its own (not SAAS_SECRET_KEY), with ids so old entries still verify."""

from __future__ import annotations

import pytest

from saas.config import ConfigError, load_settings

KEY = "k2026:" + "s" * 40


def _load(tmp_path, **values):
    return load_settings({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x" * 40, **values})


def test_the_key_and_its_fallbacks_are_read_by_id(tmp_path):
    audit = _load(tmp_path, AUDIT_KEY=KEY, AUDIT_KEY_FALLBACKS="k2025:" + "o" * 40 + ", k2024:" + "p" * 40).audit

    assert (audit.key_id, audit.key) == ("k2026", "s" * 40)
    assert audit.keys() == {"k2026": "s" * 40, "k2025": "o" * 40, "k2024": "p" * 40}
    assert "s" * 40 not in repr(audit)


def test_production_requires_an_audit_key(tmp_path):
    with pytest.raises(ConfigError, match="SAAS_AUDIT_KEY est obligatoire en production"):
        _load(tmp_path, ENV="production")
    assert _load(tmp_path, ENV="production", AUDIT_KEY=KEY).audit.key_id == "k2026"


def test_the_embedded_default_generates_one_key_in_the_instance(tmp_path):
    first, again = _load(tmp_path).audit, _load(tmp_path).audit

    assert first == again and first.key_id.startswith("local-") and len(first.key) >= 32
    assert (tmp_path / "audit_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("values", "message"), [
    ({"AUDIT_KEY": "sans-identifiant"}, "« identifiant:secret » attendu"),
    ({"AUDIT_KEY": "K 1:" + "s" * 40}, "« identifiant:secret » attendu"),
    ({"AUDIT_KEY": "k1:court"}, "doit faire au moins 32 caractères"),
    ({"AUDIT_KEY": "k1:" + "x" * 40}, "doit être distincte de SAAS_SECRET_KEY"),
    ({"AUDIT_KEY": KEY, "AUDIT_KEY_FALLBACKS": "k2026:" + "t" * 40}, "déjà celui de la clé courante"),
    ({"AUDIT_KEY": KEY, "AUDIT_KEY_FALLBACKS": "k1:" + "a" * 40 + ",k1:" + "b" * 40}, "figure deux fois"),
])
def test_bad_audit_keys_are_refused_with_the_reason(tmp_path, values, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, **values)
