"""A private PostgreSQL database per test run: an owner role for migrations, an app role for tests.

The app role is neither superuser nor owner and has no BYPASSRLS, so row-level security is
really exercised (a superuser would silently bypass it and hide leaks).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

ADMIN_URL = os.environ.get(
    "SAAS_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class TestDatabase:
    name: str
    owner: str
    app_role: str
    password: str

    def url(self, role: str) -> str:
        base = sa.engine.make_url(ADMIN_URL)
        return base.set(username=role, password=self.password, database=self.name).render_as_string(
            hide_password=False
        )

    @property
    def owner_url(self) -> str:
        return self.url(self.owner)

    @property
    def app_url(self) -> str:
        return self.url(self.app_role)


def create_test_database(label: str) -> TestDatabase:
    sfx = f"{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}".lower()
    tdb = TestDatabase(f"mutualis_{sfx}", f"mt_owner_{sfx}", f"mt_app_{sfx}", uuid.uuid4().hex)
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for role in (tdb.owner, tdb.app_role):
            conn.execute(sa.text(
                f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS '
                f"PASSWORD '{tdb.password}'"
            ))
        conn.execute(sa.text(f'CREATE DATABASE "{tdb.name}" OWNER "{tdb.owner}"'))
    engine.dispose()
    # The app role needs the unaccent/french config later; extensions are created by the owner.
    owner = sa.create_engine(tdb.url(tdb.owner), isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(sa.text('REVOKE ALL ON SCHEMA public FROM PUBLIC'))
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA public TO "{tdb.app_role}"'))
    owner.dispose()
    return tdb


def drop_test_database(tdb: TestDatabase) -> None:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
        ), {"d": tdb.name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{tdb.name}"'))
        for role in (tdb.app_role, tdb.owner):
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
    engine.dispose()


def truncate_all(owner_url: str) -> None:
    engine = sa.create_engine(owner_url)
    with engine.begin() as conn:
        tables = conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )).scalars().all()
        if tables:
            conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
    engine.dispose()
