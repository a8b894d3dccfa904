"""Credentials never printed: redact_url and redact_text over hostile URLs, DSNs and dumps.

Each row is a URL as someone may really write it (an unencoded '@', ':' or '/' in a password, a
password in the query string, an S3 key in a URL) with what logs, errors and manifests show.
"""

from __future__ import annotations

import pytest

from airloop.core.redaction import redact_text, redact_url, url_secrets

SECRET = "s3cr3t"

HOSTILE_URLS = [
    # (url, shown)
    ("postgresql://airloop:s3cr3t@db:5432/source", "postgresql://airloop:***@db:5432/source"),
    ("postgresql+psycopg://airloop:s3cr3t@db/source", "postgresql+psycopg://airloop:***@db/source"),
    ("postgresql://airloop:s3%40cr3t@db/source", "postgresql://airloop:***@db/source"),
    ("postgresql://airloop:s3@cr3t@db/source", "postgresql://airloop:***@db/source"),
    ("postgresql://airloop:s3@c@r3t@db/source", "postgresql://airloop:***@db/source"),
    ("postgresql://airloop:s3:cr3t@db:5432/source", "postgresql://airloop:***@db:5432/source"),
    ("postgresql://airloop:s3/cr3t@db/source", "postgresql://airloop:***@db/source"),
    ("postgresql://airloop:s3%2Fcr3t@db/source", "postgresql://airloop:***@db/source"),
    ("postgresql://airloop:s3?cr3t@db/source", "postgresql://airloop:***@db/source"),
    ("postgresql://airloop:s3#cr3t@db/source", "postgresql://airloop:***@db/source"),
    ("postgresql://airloop:s3cr3t@db/source?sslmode=require", "postgresql://airloop:***@db/source?sslmode=require"),
    ("postgresql://airloop@db/source?password=s3cr3t", "postgresql://airloop@db/source?password=***"),
    ("postgresql://airloop@db/source?PASSWORD=s3cr3t&sslmode=disable",
     "postgresql://airloop@db/source?PASSWORD=***&sslmode=disable"),
    ("postgresql://db/source?passwd=s3cr3t&pwd=s3cr3t", "postgresql://db/source?passwd=***&pwd=***"),
    ("postgresql://db/source?sslpassword=s3cr3t&sslmode=verify-full",
     "postgresql://db/source?sslpassword=***&sslmode=verify-full"),
    ("postgresql://db/source?password=s3&cr3t", "postgresql://db/source?password=***&***"),
    ("postgresql://db/source?user=me@corp&token=s3cr3t", "postgresql://db/source?user=me@corp&token=***"),
    ("postgresql://airloop:s3cr3t/source", "postgresql://***/source"),
    ("mysql://root:s3cr3t@db/x?charset=utf8mb4", "mysql://root:***@db/x?charset=utf8mb4"),
    ("redis://:s3cr3t@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://default:s3cr3t@cache:6380/1", "rediss://default:***@cache:6380/1"),
    ("amqp://guest:s3cr3t@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
    ("db+postgresql+psycopg2://postgres:s3cr3t@127.0.0.1/airflow", "db+postgresql+psycopg2://postgres:***@127.0.0.1/airflow"),
    ("s3://AKIAEXAMPLE:s3cr3t/K7MDENG@bucket/lake", "s3://AKIAEXAMPLE:***@bucket/lake"),
    ("s3://bucket/lake?access_key=AKIAEXAMPLE&secret_key=s3cr3t", "s3://bucket/lake?access_key=***&secret_key=***"),
    ("https://s3.example.com/b/k?X-Amz-Signature=s3cr3t&X-Amz-Security-Token=s3cr3t&api_key=s3cr3t",
     "https://s3.example.com/b/k?X-Amz-Signature=***&X-Amz-Security-Token=***&api_key=***"),
    ("https://hooks.example.com/cb#access_token=s3cr3t", "https://hooks.example.com/cb#access_token=***"),
    ("https://s3cr3t@github.com/org/repo", "https://***@github.com/org/repo"),
    ("http://user:s3cr3t@[::1]:8080/x", "http://user:***@[::1]:8080/x"),
    ("airloop:s3cr3t@db:5432/source", "airloop:***@db:5432/source"),
    ("jdbc:postgresql://airloop:s3cr3t@db/source", "jdbc:***@db/source"),
    ("host=db user=airloop password=s3cr3t dbname=source", "host=db user=airloop password=*** dbname=source"),
    # Not a URL any client reads: replaced whole rather than guessed at.
    ("postgresql://airloop:s3 cr3t@db/source", "postgresql://***"),
    ("postgresql://airloop:s3cr3t\n@db/source", "postgresql://***"),
    ("airloop s3cr3t@db", "<redacted URL>"),
    (b"postgresql://airloop:s3cr3t@db/source", "<redacted URL>"),
]  # fmt: skip

PLAIN_URLS = [
    "sqlite:///data/source.db",
    "sqlite:////tmp/with@sign/registry.db",
    "sqlite://",
    "file:///srv/airloop/lake",
    "s3://bucket/lake/raw/flights/ds=2026-03-01/part-0a1b2c.parquet",
    "s3://bucket/prefix/file@v2.parquet",
    "postgresql+psycopg://postgres@127.0.0.1:5432/airflow?sslmode=disable",
    "http://127.0.0.1:5000",
    "/srv/airloop/data",
    "",
]


@pytest.mark.parametrize("url, shown", HOSTILE_URLS, ids=[str(u)[:60] for u, _ in HOSTILE_URLS])
def test_hostile_urls_are_shown_without_their_credentials(url, shown):
    redacted = redact_url(url)
    assert redacted == shown
    for piece in ("s3cr3t", "cr3t", "s3%40", "K7MDENG"):
        assert piece not in redacted
    assert redact_url(redacted) == redacted  # redacting twice changes nothing


@pytest.mark.parametrize("url", PLAIN_URLS)
def test_urls_without_credentials_come_back_unchanged(url):
    assert redact_url(url) == url


@pytest.mark.parametrize("value", [None, 42, object(), "\x00\x01", "://", "postgresql://u:s3cr3t@[::1/db", "a" * 100_000 + "@"])
def test_redact_url_never_raises_and_never_echoes_a_secret(value):
    shown = redact_url(value)
    assert isinstance(shown, str) and SECRET not in shown


def test_a_value_whose_str_raises_is_redacted_whole():
    class Hostile:
        def __str__(self):
            raise RuntimeError("postgresql://u:s3cr3t@h/db")

    assert redact_url(Hostile()) == "<redacted URL>"
    assert SECRET not in redact_text(Hostile())


def test_environment_dumps_lose_their_secret_values_and_keep_the_rest():
    dump = "\n".join([
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN=FwoGZXIvYXdzEXAMPLE",
        "AIRFLOW__CORE__FERNET_KEY=Zm9vYmFyYmF6cXV4EXAMPLE=",
        "AIRFLOW__API_AUTH__JWT_SECRET=jwtEXAMPLE",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://postgres:pgEXAMPLE@db:5432/airflow",
        "PGPASSWORD=pgEXAMPLE",
        "AIRLOOP_TIMEZONE=America/New_York",
        "AIRLOOP_LAKE_URL=s3://airloop/lake",
    ])  # fmt: skip
    shown = redact_text(dump)
    assert "EXAMPLE" not in shown
    assert "AWS_SECRET_ACCESS_KEY=***" in shown and "AIRFLOW__CORE__FERNET_KEY=***" in shown
    assert "postgresql+psycopg2://postgres:***@db:5432/airflow" in shown
    assert "AIRLOOP_TIMEZONE=America/New_York" in shown and "AIRLOOP_LAKE_URL=s3://airloop/lake" in shown


@pytest.mark.parametrize(
    "message, kept",
    [
        ("cannot reach postgresql://u:s3cr3t@db/x: timeout", "cannot reach postgresql://u:***@db/x: timeout"),
        ("options {'password': 's3 cr3t', 'host': 'db'}", "options {'password': '***', 'host': 'db'}"),
        ('{"token": "s3cr3t", "ds": "2026-03-01"}', '{"token": "***", "ds": "2026-03-01"}'),
        ("Authorization: Bearer s3cr3t.jwt", "Authorization: Bearer ***"),
        ("export API_KEY=s3cr3t; run", "export API_KEY=***"),
        ("key AKIAIOSFODNN7XS3CR3T used", "key AKIA*** used"),
    ],
)
def test_messages_lose_embedded_credentials(message, kept):
    shown = redact_text(message)
    assert kept in shown and SECRET not in shown and "S3CR3T" not in shown and "cr3t'" not in shown


def test_messages_without_credentials_are_left_readable():
    for message in (
        "flights 2026-03-01: 3 of 900 rows quarantined (0.33%); origin+dest: exact duplicate of an earlier row",
        "partition s3://airloop/lake/raw/flights/ds=2026-03-01 has no _manifest.json: it was never published",
        "origin+year+month+day+hour: null in non-nullable key column; primary key: ds",
    ):
        assert redact_text(message) == message


def test_known_secrets_are_masked_wherever_a_driver_echoes_them():
    # SQLAlchemy ends a password at the first '@': the driver then names the host "ssword-tail@db".
    url = "postgresql://airloop:p@ssword-tail@db/source?token=t0k3n-value"
    assert {"p@ssword-tail", "ssword-tail", "t0k3n-value"} <= set(url_secrets(url))
    echoed = "failed to resolve host 'ssword-tail@db'; token t0k3n-value rejected"
    shown = redact_text(echoed, secrets=url_secrets(url))
    assert "ssword" not in shown and "t0k3n" not in shown and "@db" in shown
    assert url_secrets("postgresql://airloop:p%40ss-word@db/x") == ("p%40ss-word", "p@ss-word")
    assert url_secrets("sqlite:///data/source.db") == ()
