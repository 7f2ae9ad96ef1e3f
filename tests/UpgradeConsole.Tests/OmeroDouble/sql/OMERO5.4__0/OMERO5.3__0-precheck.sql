-- The Omero host double's readiness check for OMERO5.3__0 -> OMERO5.4__0 (written for the tests,
-- reproducing what ome/openmicroscopy sql/psql/OMERO5.4__0/OMERO5.3__0-precheck.sql checks and prints).

BEGIN;

@CHECKS@

-- 2017-SV5: two original files of one repository whose paths name the same file once repeated
-- slashes are collapsed.
DO $uc$
DECLARE
    clash int8[];
BEGIN
    SELECT array_agg(id ORDER BY id) INTO clash FROM (
        SELECT f.id, count(*) OVER (PARTITION BY f.repo, regexp_split_to_array('/' || f.path || f.name || '/', '/+')) AS n
        FROM originalfile f WHERE f.repo IS NOT NULL) AS paths
    WHERE n > 1;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'duplicate original file paths with IDs %', clash;
    END IF;
END;$uc$;

SELECT E'\n\n\nYOUR DATABASE IS READY FOR UPGRADE TO VERSION @TO@\n\n\n' AS Status;

ROLLBACK;
