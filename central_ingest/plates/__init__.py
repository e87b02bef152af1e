"""The plate vault: plates sealed at rest, searchable by exact plate (blind index) and by part (tokens).

``keyring`` (keys from a file or a KMS hook), ``vault`` (AES-256-GCM, HMAC blind index), ``partial``
(3-gram tokens and witness patterns), ``search`` (pass history queries), ``evidence_store`` (sealed
evidence images), ``rotation`` (re-seal and re-index after a key change), ``legacy`` (rows stored in
clear by older versions), ``intake`` (refusing plate events when no keyring is configured).
See docs/plate_vault.md.
"""
