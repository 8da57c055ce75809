-- Event payloads are stored typed, each tagged with its kind. Events stored before keep
-- their data as the API wrote it then, tagged `legacy`, and are served as they were.
UPDATE order_events SET data = jsonb_build_object('kind', 'legacy', 'api', data)
WHERE NOT data ? 'kind';
