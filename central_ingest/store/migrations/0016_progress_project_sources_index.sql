-- 0016: the projects of a set of cameras (alerts.scope.visible_projects, run for every scoped request of
-- the alerts and projects APIs) read "DISTINCT project_id FROM progress WHERE (agent_id, source_id) IN
-- (the caller's cameras)". No index led with the camera, so each call scanned every chunk of progress.
-- This one serves the lookup by camera and yields its projects from the index alone (index-only scan).
CREATE INDEX progress_source_project_idx ON progress (agent_id, source_id, project_id);
