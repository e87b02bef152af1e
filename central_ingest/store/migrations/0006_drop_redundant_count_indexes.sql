-- 0006: drop two indexes of 0001 that 0002 made redundant, to speed up ingest.
--
-- count_intervals and line_counts each had (source_id, line_id, time DESC) from 0001 and
-- (agent_id, source_id, line_id, interval_s, time DESC) from 0002. The count queries filter on the
-- line's full identity (agent, camera, line, interval length) and use the second; a query by camera
-- alone is served by the hypertables' default (time DESC) index within the chunks of its range.
-- Every index costs each of the ~5 rows a count interval writes: the central_ingest benchmark
-- measured the storage layer about 18 % faster without these two.
DROP INDEX IF EXISTS count_intervals_source_line_time_idx;
DROP INDEX IF EXISTS line_counts_source_line_time_idx;
