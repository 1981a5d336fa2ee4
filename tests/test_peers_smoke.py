"""The local database peers start, answer and survive a restart."""

import psycopg
import redis


def test_postgres_survives_restart(make_postgres):
    peer = make_postgres()
    with psycopg.connect(peer.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (v text)")
        conn.execute("INSERT INTO marker VALUES ('kept')")
    peer.restart()
    with psycopg.connect(peer.dsn()) as conn:
        assert conn.execute("SELECT v FROM marker").fetchone() == ("kept",)


def test_redis_aof_survives_crash(make_redis):
    peer = make_redis()
    redis.Redis.from_url(peer.url()).set("marker", "kept")
    peer.crash()
    peer.start()
    assert redis.Redis.from_url(peer.url()).get("marker") == b"kept"
