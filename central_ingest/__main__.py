"""``python -m central_ingest`` is the ``central-ingest`` command."""

from central_ingest.cli import main

raise SystemExit(main())
