"""Schema revisions the double knows (fractal-2.17.md §1.2-1.3)."""

HEAD_2_16 = "981d588fe248"
HEAD_2_17_0 = "83bc2ad3ffcc"

# 83bc2ad3ffcc_2_17_0.py, written from the facts: resource and profile tables, resource_id on
# projects and task groups, profile_id / project_dir / slurm_accounts on users, username dropped.
UPGRADE_2_17_0 = """
BEGIN;
CREATE TABLE resource (
    id serial NOT NULL,
    type character varying NOT NULL,
    name character varying NOT NULL,
    timestamp_created timestamp with time zone NOT NULL,
    host character varying,
    jobs_local_dir character varying NOT NULL,
    jobs_runner_config jsonb DEFAULT '{}'::jsonb NOT NULL,
    jobs_slurm_python_worker character varying,
    jobs_poll_interval integer NOT NULL,
    tasks_local_dir character varying NOT NULL,
    tasks_python_config jsonb DEFAULT '{}'::jsonb NOT NULL,
    tasks_pixi_config jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT pk_resource PRIMARY KEY (id),
    CONSTRAINT uq_resource_name UNIQUE (name),
    CONSTRAINT ck_resource_correct_type CHECK (((type)::text = ANY (ARRAY[('local'::character varying)::text, ('slurm_sudo'::character varying)::text, ('slurm_ssh'::character varying)::text]))),
    CONSTRAINT ck_resource_jobs_slurm_python_worker_set CHECK (type = 'local' OR jobs_slurm_python_worker IS NOT NULL)
);
CREATE TABLE profile (
    id serial NOT NULL,
    resource_id integer NOT NULL,
    resource_type character varying NOT NULL,
    name character varying NOT NULL,
    username character varying,
    ssh_key_path character varying,
    jobs_remote_dir character varying,
    tasks_remote_dir character varying,
    CONSTRAINT pk_profile PRIMARY KEY (id),
    CONSTRAINT uq_profile_name UNIQUE (name),
    CONSTRAINT fk_profile_resource_id_resource FOREIGN KEY (resource_id) REFERENCES resource(id) ON DELETE RESTRICT
);
ALTER TABLE projectv2 ADD COLUMN resource_id integer;
ALTER TABLE projectv2 ADD CONSTRAINT fk_projectv2_resource_id_resource FOREIGN KEY (resource_id) REFERENCES resource(id) ON DELETE RESTRICT;
ALTER TABLE taskgroupv2 ADD COLUMN resource_id integer;
ALTER TABLE taskgroupv2 ADD CONSTRAINT fk_taskgroupv2_resource_id_resource FOREIGN KEY (resource_id) REFERENCES resource(id) ON DELETE RESTRICT;
ALTER TABLE user_oauth ADD COLUMN profile_id integer;
ALTER TABLE user_oauth ADD CONSTRAINT fk_user_oauth_profile_id_profile FOREIGN KEY (profile_id) REFERENCES profile(id) ON DELETE RESTRICT;
ALTER TABLE user_oauth ADD COLUMN project_dir character varying DEFAULT '/PLACEHOLDER' NOT NULL;
ALTER TABLE user_oauth ADD COLUMN slurm_accounts character varying[] DEFAULT '{}';
ALTER TABLE user_oauth DROP COLUMN username;
UPDATE alembic_version SET version_num = '83bc2ad3ffcc';
COMMIT;
"""
