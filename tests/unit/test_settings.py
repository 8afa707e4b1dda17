from pathlib import Path

import pytest

from gateway.settings import SETTINGS, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_contract():
    s = Settings.load(environ={})
    assert (s.host, s.port, s.admin_port, s.workers, s.redis_url) == ("127.0.0.1", 8443, 8090, 1, None)
    assert s.trusted_proxies == ()


def test_a_flag_wins_over_the_environment_which_wins_over_the_default():
    s = Settings.load({"port": "9443"}, environ={"OBGW_PORT": "7443", "OBGW_WORKERS": "3"})
    assert (s.port, s.workers) == (9443, 3)


@pytest.mark.parametrize("env, message", [
    ({"OBGW_PORT": "http"}, "OBGW_PORT='http'"),
    ({"OBGW_PORT": "70000"}, "OBGW_PORT='70000': not a TCP port"),
    ({"OBGW_WORKERS": "0"}, "OBGW_WORKERS='0': must be at least 1"),
    ({"OBGW_TRUSTED_PROXIES": "10.0.0.1,nonsense"}, "OBGW_TRUSTED_PROXIES='10.0.0.1,nonsense'"),
])
def test_a_bad_value_names_the_variable_and_the_value(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.load(environ=env)


def test_the_environment_handed_to_workers_reproduces_the_settings():
    s = Settings.load(environ={"OBGW_TRUSTED_PROXIES": "127.0.0.2, 10.1.0.0/16", "REDIS_URL": "redis://x:1/0",
                               "OBGW_SERVICE_ACCOUNTS_URL": "http://127.0.0.1:9"})
    assert Settings.load(environ=s.to_environ()) == s
    assert s.service_urls == {"accounts": "http://127.0.0.1:9"}


def test_the_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    for s in SETTINGS:
        assert f"`{s.env}`" in readme and f"`--{s.name.replace('_', '-')}`" in readme
