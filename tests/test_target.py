"""Live-tenant credentials come only from the environment and never show up in errors or reprs."""

import pytest

from harness.errors import ConfigError
from harness.target import login_from_env, safe_url


def test_user_login_reads_env_and_hides_the_password() -> None:
    login = login_from_env("user", {"LOSANT_EMAIL": "ops@example.com", "LOSANT_PASSWORD": "hunter2-secret"})
    assert login.email == "ops@example.com"
    assert str(login.password) == "hunter2-secret"
    assert "hunter2-secret" not in repr(login)
    assert "hunter2-secret" not in repr(login.password)


def test_token_login() -> None:
    login = login_from_env("token", {"LOSANT_API_TOKEN": "tok-very-secret"})
    assert str(login.api_token) == "tok-very-secret"
    assert "tok-very-secret" not in repr(login)


@pytest.mark.parametrize("auth, env, missing", [
    ("user", {}, "LOSANT_EMAIL, LOSANT_PASSWORD"),
    ("user", {"LOSANT_EMAIL": "a@b.c"}, "LOSANT_PASSWORD"),
    ("token", {"LOSANT_API_TOKEN": ""}, "LOSANT_API_TOKEN"),
])
def test_missing_credentials_name_the_variables(auth: str, env: dict, missing: str) -> None:
    with pytest.raises(ConfigError) as err:
        login_from_env(auth, env)
    assert missing in str(err.value)


def test_error_never_contains_a_present_secret() -> None:
    with pytest.raises(ConfigError) as err:
        login_from_env("user", {"LOSANT_PASSWORD": "pw-that-must-not-leak"})
    assert "pw-that-must-not-leak" not in str(err.value)


def test_safe_url_strips_user_info() -> None:
    assert safe_url("https://user:pa55@api.losant.com:443/v1?x=1") == "https://api.losant.com:443/v1"
    assert safe_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
