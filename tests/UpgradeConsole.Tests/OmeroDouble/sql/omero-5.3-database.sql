-- The Omero host double's database: an OMERO5.3__0 database reduced to the tables the
-- OMERO5.3__0 -> OMERO5.4__0 upgrade reads or changes, with OMERO's own column names and types
-- (ome/openmicroscopy sql/psql/OMERO5.4__0/schema.sql; the upgrade script adds no column to them).
-- Written for the tests; not OMERO's SQL. Facts and their files: ../README.md.

CREATE SEQUENCE seq_dbpatch;
CREATE TABLE dbpatch (
    id int8 NOT NULL DEFAULT nextval('seq_dbpatch'),
    currentPatch int4 NOT NULL,
    currentVersion varchar(255) NOT NULL,
    permissions int8 NOT NULL DEFAULT -52,
    finished timestamp,
    message varchar(255) DEFAULT 'Updating',
    previousPatch int4 NOT NULL,
    previousVersion varchar(255) NOT NULL,
    external_id int8 UNIQUE,
    PRIMARY KEY (id)
);

-- ome_nextval's bookkeeping: one advisory-lock id per sequence name.
CREATE SEQUENCE _lock_seq;
CREATE TABLE _lock_ids (
    name varchar(255) NOT NULL UNIQUE,
    id int4 NOT NULL PRIMARY KEY DEFAULT nextval('_lock_seq')
);

CREATE FUNCTION ome_nextval(seq varchar, increment int4) RETURNS int8 AS $$
DECLARE
    lock_id int4;
    result int8;
BEGIN
    SELECT id INTO lock_id FROM _lock_ids WHERE name = seq;
    IF lock_id IS NULL THEN
        INSERT INTO _lock_ids (name) VALUES (seq) RETURNING id INTO lock_id;
    END IF;
    PERFORM pg_advisory_lock(1, lock_id);
    PERFORM nextval(seq) FROM generate_series(1, increment);
    result := currval(seq);
    PERFORM pg_advisory_unlock(1, lock_id);
    RETURN result;
END;$$ LANGUAGE plpgsql;

CREATE FUNCTION ome_nextval(seq varchar) RETURNS int8 AS $$
BEGIN
    RETURN ome_nextval(seq, 1);
END;$$ LANGUAGE plpgsql;

CREATE SEQUENCE seq_adminprivilege;
CREATE TABLE adminprivilege (
    id int8 NOT NULL,
    permissions int8 NOT NULL,
    value varchar(255) NOT NULL UNIQUE,
    external_id int8 UNIQUE,
    PRIMARY KEY (id)
);

CREATE SEQUENCE seq_experimenter;
CREATE TABLE experimenter (
    id int8 NOT NULL,
    permissions int8 NOT NULL,
    email varchar(255),
    firstName varchar(255) NOT NULL,
    institution varchar(255),
    lastName varchar(255) NOT NULL,
    ldap bool NOT NULL,
    middleName varchar(255),
    omeName varchar(255) NOT NULL UNIQUE,
    version int4,
    external_id int8 UNIQUE,
    PRIMARY KEY (id)
);

CREATE TABLE experimenter_config (
    experimenter_id int8 NOT NULL REFERENCES experimenter,
    name text NOT NULL,
    value text NOT NULL,
    index int4 NOT NULL,
    PRIMARY KEY (experimenter_id, index)
);

CREATE SEQUENCE seq_experimentergroup;
CREATE TABLE experimentergroup (
    id int8 NOT NULL,
    description text,
    permissions int8 NOT NULL,
    ldap bool NOT NULL,
    name varchar(255) NOT NULL UNIQUE,
    version int4,
    external_id int8 UNIQUE,
    PRIMARY KEY (id)
);

CREATE SEQUENCE seq_groupexperimentermap;
CREATE TABLE groupexperimentermap (
    id int8 NOT NULL,
    permissions int8 NOT NULL,
    owner bool NOT NULL,
    version int4,
    child int8 NOT NULL REFERENCES experimenter,
    external_id int8 UNIQUE,
    parent int8 NOT NULL REFERENCES experimentergroup,
    child_index int4 NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (parent, child),
    UNIQUE (child, child_index)
);

CREATE SEQUENCE seq_node;
CREATE TABLE node (
    id int8 NOT NULL,
    conn text NOT NULL,
    permissions int8 NOT NULL,
    down timestamp,
    scale int4,
    up timestamp NOT NULL,
    uuid varchar(255) NOT NULL UNIQUE,
    version int4,
    external_id int8 UNIQUE,
    PRIMARY KEY (id)
);

CREATE SEQUENCE seq_originalfile;
CREATE TABLE originalfile (
    id int8 NOT NULL,
    atime timestamp,
    ctime timestamp,
    permissions int8 NOT NULL,
    hash text,
    mimetype varchar(255),
    mtime timestamp,
    name text NOT NULL,
    path text NOT NULL,
    repo varchar(255),
    "size" int8,
    version int4,
    creation_id int8 NOT NULL,
    external_id int8 UNIQUE,
    group_id int8 NOT NULL REFERENCES experimentergroup,
    owner_id int8 NOT NULL REFERENCES experimenter,
    update_id int8 NOT NULL,
    hasher int8,
    PRIMARY KEY (id)
);

-- A database created at 5.2 and upgraded to 5.3: two dbpatch rows, the last one finished.
INSERT INTO dbpatch (currentVersion, currentPatch, previousVersion, previousPatch, message, finished)
    VALUES ('OMERO5.2', 0, 'OMERO5.2', 0, 'Database ready.', '2016-11-02 10:00:00');
INSERT INTO dbpatch (currentVersion, currentPatch, previousVersion, previousPatch, message, finished)
    VALUES ('OMERO5.3', 0, 'OMERO5.2', 0, 'Database updated.', '2017-06-20 09:30:00');

-- The built-in roles keep their ids (root 0, guest 1; groups system 0, user 1, guest 2).
INSERT INTO experimenter (id, permissions, firstName, lastName, ldap, omeName, version) VALUES
    (0, -52, 'root', 'root', false, 'root', 0),
    (1, -52, 'Guest', 'Account', false, 'guest', 0),
    (2, -52, 'Ada', 'Lovelace', false, 'ada', 0),
    (3, -52, 'Rosalind', 'Franklin', true, 'rosalind', 0);
SELECT setval('seq_experimenter', 3);
INSERT INTO experimentergroup (id, permissions, ldap, name, version) VALUES
    (0, -120, false, 'system', 0),
    (1, -120, false, 'user', 0),
    (2, -120, false, 'guest', 0),
    (3, -88, false, 'imaging-lab', 0);
SELECT setval('seq_experimentergroup', 3);
INSERT INTO groupexperimentermap (id, permissions, owner, version, child, parent, child_index) VALUES
    (1, -52, false, 0, 0, 0, 0),
    (2, -52, false, 0, 0, 1, 1),
    (3, -52, false, 0, 1, 2, 0),
    (4, -52, false, 0, 2, 1, 0),
    (5, -52, true, 0, 2, 3, 1),
    (6, -52, false, 0, 3, 1, 0),
    (7, -52, false, 0, 3, 3, 1);
SELECT setval('seq_groupexperimentermap', 7);
INSERT INTO experimenter_config (experimenter_id, name, value, index) VALUES
    (2, 'omero.client.viewer.initial_zoom_level', '2', 0);
INSERT INTO node (id, conn, permissions, up, uuid, version) VALUES
    (1, 'master', -52, '2017-06-20 09:31:00', 'a6f1f36a-6c0b-4dc6-9a63-5b1c7c3a1f10', 0);
SELECT setval('seq_node', 1);
INSERT INTO originalfile (id, permissions, hash, mimetype, name, path, repo, "size", version, creation_id, group_id, owner_id, update_id) VALUES
    (1, -120, NULL, 'text/x-python', 'Batch_Image_Export.py', '/omero/export_scripts/', 'ScriptRepo', 11231, 0, 1, 0, 0, 1),
    (2, -88, 'a3c1', 'image/tiff', 'cells.tif', 'ada_2/2017-06/21/10-01-02.123/', 'a6f1f36a-6c0b-4dc6-9a63-5b1c7c3a1f10', 524288, 0, 2, 3, 2, 2),
    (3, -88, 'b7d2', 'image/tiff', 'nuclei.tif', 'ada_2/2017-06/21/10-01-02.123/', 'a6f1f36a-6c0b-4dc6-9a63-5b1c7c3a1f10', 262144, 0, 2, 3, 2, 2),
    (4, -88, NULL, 'text/plain', 'notes.txt', '/', NULL, 12, 0, 3, 3, 3, 3);
SELECT setval('seq_originalfile', 4);
