"""The append-only, hash-chained audit log: who did what, when, why, and how many results.

``append_audit`` writes an entry in the caller's transaction; ``verify_chain`` recomputes the
chain; ``routes`` serves it to auditors. The hash format is in ``canonical``.
"""

from central_ingest.audit.entry import AuditEntry, AuditEntryError, AuditRecord
from central_ingest.audit.log import AuditFilter, append_audit, chain_head, iter_audit, list_audit
from central_ingest.audit.verify import ChainReport, ChainVerifier, verify_chain, verify_records

__all__ = [
    "AuditEntry",
    "AuditEntryError",
    "AuditFilter",
    "AuditRecord",
    "ChainReport",
    "ChainVerifier",
    "append_audit",
    "chain_head",
    "iter_audit",
    "list_audit",
    "verify_chain",
    "verify_records",
]
