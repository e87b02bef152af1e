"""Construction progress from site cameras: frame quality, site activity, visual state of work-package
regions against reference images, smoothing over days and the daily progress events (docs/site_progress.md)."""
