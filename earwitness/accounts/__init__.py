"""Local user accounts: passwords, roles, API keys, browser sessions, one-time login links.

The service layer the API, the CLI and the web pages share; nothing here knows HTTP.

- :mod:`~earwitness.accounts.credentials` — argon2 passwords, random tokens and their hashes
- :mod:`~earwitness.accounts.users` — create, list, change role/password/agent link, disable
- :mod:`~earwitness.accounts.keys` — per-user API keys (shown once, stored hashed)
- :mod:`~earwitness.accounts.sessions` — browser sessions and one-time login tokens
- :mod:`~earwitness.accounts.bootstrap` — the first start: an admin and a login link
- :mod:`~earwitness.accounts.principal` — who a request acts as, once authenticated
"""

from earwitness.accounts.principal import Principal

__all__ = ["Principal"]
