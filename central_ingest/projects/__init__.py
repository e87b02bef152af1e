"""Construction projects: approved plans (S-curves per work package), their import from PMU files, and routes.

Imports nothing on purpose: the alert engine, the CLI and the app each import the module they need, so
loading one part (say, the pure S-curve code in a test) never drags in FastAPI or the database driver.
"""
