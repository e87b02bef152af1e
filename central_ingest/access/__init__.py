"""Who may do what: users and roles, passwords (scrypt), TOTP, sessions, and the role check.

Routes depend on ``require_role(...)`` and receive a ``Principal``; everything they do with
personal data goes to the audit log (``central_ingest.audit``).

Import from the modules (``access.dependencies``, ``access.principal``, ``access.roles``): this package
imports nothing, because ``central_ingest.settings`` needs ``access.settings`` and the dependencies need
the settings.
"""
