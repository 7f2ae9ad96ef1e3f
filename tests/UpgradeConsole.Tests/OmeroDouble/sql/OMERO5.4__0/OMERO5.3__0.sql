-- The Omero host double's upgrade OMERO5.3__0 -> OMERO5.4__0 (written for the tests, reproducing
-- the checks, the dbpatch row, the new tables, triggers and rows, and the printed line of
-- ome/openmicroscopy sql/psql/OMERO5.4__0/OMERO5.3__0.sql).

BEGIN;

@CHECKS@

INSERT INTO dbpatch (currentVersion, currentPatch, previousVersion, previousPatch)
    VALUES ('@TO_VERSION@', @TO_PATCH@, '@FROM_VERSION@', @FROM_PATCH@);

-- The light-administrator privileges 5.4 introduced.
INSERT INTO adminprivilege (id, permissions, value)
    SELECT ome_nextval('seq_adminprivilege'), -52, p
    FROM unnest(ARRAY['Chgrp', 'Chown', 'DeleteFile', 'DeleteManagedRepo', 'DeleteOwned', 'DeleteScriptRepo',
                      'ModifyGroup', 'ModifyGroupMembership', 'ModifyUser', 'ReadSession', 'Sudo', 'WriteFile',
                      'WriteManagedRepo', 'WriteOwned', 'WriteScriptRepo']) AS p ORDER BY p;

-- The built-in role ids, now written down in the database.
CREATE TABLE _roles (
    root_user_id int8 NOT NULL,
    guest_user_id int8 NOT NULL,
    system_group_id int8 NOT NULL,
    user_group_id int8 NOT NULL,
    guest_group_id int8 NOT NULL
);
INSERT INTO _roles VALUES (0, 1, 0, 1, 2);

CREATE FUNCTION prevent_root_privilege_restriction() RETURNS trigger AS $uc$
DECLARE
    r _roles%ROWTYPE;
BEGIN
    SELECT * INTO STRICT r FROM _roles;
    IF NEW.experimenter_id = r.root_user_id AND NEW.name LIKE 'AdminPrivilege:%' AND NEW.value NOT ILIKE 'true' THEN
        RAISE EXCEPTION 'cannot restrict admin privileges of root experimenter';
    END IF;
    RETURN NEW;
END;$uc$ LANGUAGE plpgsql;

CREATE TRIGGER prevent_root_privilege_restriction BEFORE INSERT OR UPDATE ON experimenter_config
    FOR EACH ROW EXECUTE PROCEDURE prevent_root_privilege_restriction();

CREATE UNLOGGED TABLE _current_admin_privileges (
    transaction int8,
    privilege varchar(255)
);
CREATE INDEX i_current_admin_privileges_transactions ON _current_admin_privileges (transaction);

CREATE INDEX node_down ON node (down);

UPDATE dbpatch SET message = 'Database updated.', finished = clock_timestamp()
    WHERE id = (SELECT max(id) FROM dbpatch);

SELECT E'\n\n\nYOU HAVE SUCCESSFULLY UPGRADED YOUR DATABASE TO VERSION ' || currentversion || '__' || currentpatch || E'\n\n\n' AS Status
    FROM dbpatch WHERE id = (SELECT max(id) FROM dbpatch);

COMMIT;
