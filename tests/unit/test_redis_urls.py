"""REDIS_URL forms with passwords and TLS (issue 19 item 2): what each part of a URL becomes for the data nodes and
the Sentinels, what the settings add to it, and the clear error each bad URL or setting gets."""
from __future__ import annotations

from pathlib import Path

import pytest
import redis

from gateway.settings import Settings, SettingsError
from gateway.store.redis import HaAddress, sync_client


def test_a_tls_sentinel_url_gives_the_masters_and_the_sentinels_their_own_credentials_and_tls():
    address = HaAddress("rediss+sentinel://app:m%40ster@10.0.0.1:26379,[::1]:26380/obgw"
                        "?ssl_ca_certs=/etc/ca.pem&sentinel_password=s%26nt&sentinel_username=watch&wait=2")
    assert (address.cluster, address.tls, address.master, address.wait) == (False, True, "obgw", 2)
    assert address.nodes == [("10.0.0.1", 26379), ("::1", 26380)]
    assert address.node_options() == {"username": "app", "password": "m@ster", "ssl": True,
                                      "ssl_ca_certs": "/etc/ca.pem"}
    assert address.sentinel_options(1.0) == {"username": "watch", "password": "s&nt", "socket_connect_timeout": 1.0,
                                             "socket_timeout": 1.0, "ssl": True, "ssl_ca_certs": "/etc/ca.pem"}


def test_a_tls_cluster_url_with_a_client_certificate():
    address = HaAddress("rediss+cluster://:pw@127.0.0.1:7000?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem"
                        "&ssl_keyfile=/c.key")
    assert address.cluster and address.tls and address.wait == 1
    assert address.node_options() == {"username": None, "password": "pw", "ssl": True, "ssl_ca_certs": "/ca.pem",
                                      "ssl_certfile": "/c.pem", "ssl_keyfile": "/c.key"}


def test_without_tls_no_tls_option_is_sent_and_the_sentinels_get_no_password():
    address = HaAddress("redis+sentinel://:pw@127.0.0.1:26379/obgw")
    assert address.node_options() == {"username": None, "password": "pw"}
    assert address.sentinel_options(2.0)["password"] is None and "ssl" not in address.sentinel_options(2.0)


@pytest.mark.parametrize(("url", "message"), [
    ("redis+cluster://h:1?ssl_ca_certs=/ca.pem", "ssl_ca_certs needs TLS (rediss+cluster://)"),
    ("redis+sentinel://h:1/m?tls=1", "unknown option 'tls'"),
    ("redis+cluster://:pw@h:1?sentinel_password=x", "sentinel_password and sentinel_username are for a Sentinel"),
    ("rediss+sentinel://h:1/m?wait=some", "wait='some' is not a number of replicas"),
    ("redis+cluster://h:1?wait=-1", "wait=-1 is below 0"),
    ("redis+cluster://h:http", "'h:http' is not host:port"),
    ("rediss+sentinel://h:1", "name the master after the hosts"),
    ("redis://h:1/0", "not a Redis Cluster or Sentinel URL"),
])
def test_a_bad_url_is_a_value_error_naming_the_problem(url, message):
    with pytest.raises(ValueError) as raised:
        HaAddress(url)
    assert message in str(raised.value)


def test_a_rediss_url_for_one_redis_is_redis_pys_own_and_keeps_its_ca(tmp_path):
    client = sync_client(f"rediss://:pw@127.0.0.1:6390/0?ssl_ca_certs={tmp_path / 'ca.pem'}")
    try:
        options = client.connection_pool.connection_kwargs
        assert client.connection_pool.connection_class is redis.SSLConnection
        assert (options["ssl_ca_certs"], options["password"]) == (str(tmp_path / "ca.pem"), "pw")
    finally:
        client.close()


def test_the_settings_put_the_ca_and_the_sentinels_password_into_the_url():
    sentinels = {"REDIS_SENTINELS": ":pw@10.0.0.1:26379,10.0.0.2:26379", "REDIS_SENTINEL_MASTER": "obgw",
                 "REDIS_TLS_CA": "/etc/redis/ca.pem", "REDIS_SENTINEL_PASSWORD": "s p&w"}
    url = Settings.load(environ=sentinels).redis
    assert url.startswith("rediss+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/obgw?")
    address = HaAddress(url)
    assert address.tls_options == {"ssl_ca_certs": "/etc/redis/ca.pem"} and address.sentinel_password == "s p&w"
    # The URL's own options win over the settings.
    own = "rediss+cluster://:pw@h:1?ssl_ca_certs=/mine.pem"
    assert Settings.load(environ={"REDIS_URL": own, "REDIS_TLS_CA": "/other.pem"}).redis == own
    assert Settings.load(environ={"REDIS_URL": "rediss://h:1/0", "REDIS_TLS_CA": "/ca.pem"}).redis == \
        "rediss://h:1/0?ssl_ca_certs=%2Fca.pem"
    assert Settings.load(environ={"REDIS_TLS_CA": "/ca.pem"}).redis_tls_ca == Path("/ca.pem")


@pytest.mark.parametrize(("environ", "message"), [
    ({"REDIS_URL": "redis://h:1/0", "REDIS_TLS_CA": "/ca.pem"}, "REDIS_TLS_CA='/ca.pem': REDIS_URL (redis://...) "
                                                                 "does not use TLS"),
    ({"REDIS_URL": "rediss+cluster://h:1", "REDIS_SENTINEL_PASSWORD": "x"}, "REDIS_SENTINEL_PASSWORD is set, but "
                                                                           "REDIS_URL (rediss+cluster://...)"),
])
def test_a_setting_that_cannot_apply_to_the_url_is_a_settings_error(environ, message):
    with pytest.raises(SettingsError) as raised:
        Settings.load(environ=environ)
    assert message in str(raised.value)
