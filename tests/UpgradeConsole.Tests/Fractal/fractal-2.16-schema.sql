-- The user-related part of a fractal-server 2.16.x database, written from the facts in
-- shared/design/fractal-2.17.md §1.1-1.2 (constraint names follow the migration naming convention).
-- scripts/check-fractal-fixture.sh compares it with a real upstream 2.16.6 dump.
CREATE TABLE alembic_version (
    version_num character varying(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE user_settings (
    id serial NOT NULL,
    slurm_accounts jsonb DEFAULT '[]'::json NOT NULL,
    ssh_host character varying,
    ssh_username character varying,
    ssh_private_key_path character varying,
    ssh_tasks_dir character varying,
    ssh_jobs_dir character varying,
    slurm_user character varying,
    project_dir character varying,
    CONSTRAINT pk_user_settings PRIMARY KEY (id)
);

CREATE TABLE user_oauth (
    id serial NOT NULL,
    email character varying NOT NULL,
    hashed_password character varying NOT NULL,
    is_active boolean NOT NULL,
    is_superuser boolean NOT NULL,
    is_verified boolean NOT NULL,
    username character varying,
    user_settings_id integer,
    CONSTRAINT user_oauth_pkey PRIMARY KEY (id),
    CONSTRAINT fk_user_oauth_user_settings_id_user_settings FOREIGN KEY (user_settings_id) REFERENCES user_settings(id)
);
CREATE UNIQUE INDEX ix_user_oauth_email ON user_oauth USING btree (email);

CREATE TABLE usergroup (
    id serial NOT NULL,
    name character varying NOT NULL,
    timestamp_created timestamp with time zone NOT NULL,
    viewer_paths jsonb DEFAULT '[]'::json NOT NULL,
    CONSTRAINT pk_usergroup PRIMARY KEY (id),
    CONSTRAINT uq_usergroup_name UNIQUE (name)
);

CREATE TABLE linkusergroup (
    group_id integer NOT NULL,
    user_id integer NOT NULL,
    timestamp_created timestamp with time zone DEFAULT '2000-01-01 01:00:00+01'::timestamp with time zone NOT NULL,
    CONSTRAINT pk_linkusergroup PRIMARY KEY (group_id, user_id),
    CONSTRAINT fk_linkusergroup_group_id_usergroup FOREIGN KEY (group_id) REFERENCES usergroup(id) ON DELETE CASCADE,
    CONSTRAINT fk_linkusergroup_user_id_user_oauth FOREIGN KEY (user_id) REFERENCES user_oauth(id) ON DELETE CASCADE
);

CREATE TABLE oauthaccount (
    id serial NOT NULL,
    user_id integer NOT NULL,
    oauth_name character varying NOT NULL,
    access_token character varying NOT NULL,
    expires_at integer,
    refresh_token character varying,
    account_id character varying NOT NULL,
    account_email character varying NOT NULL,
    CONSTRAINT oauthaccount_pkey PRIMARY KEY (id),
    CONSTRAINT oauthaccount_user_id_fkey FOREIGN KEY (user_id) REFERENCES user_oauth(id)
);
CREATE INDEX ix_oauthaccount_oauth_name ON oauthaccount USING btree (oauth_name);
CREATE INDEX ix_oauthaccount_account_id ON oauthaccount USING btree (account_id);

CREATE TABLE projectv2 (
    id serial NOT NULL,
    name character varying NOT NULL,
    timestamp_created timestamp with time zone NOT NULL,
    CONSTRAINT pk_projectv2 PRIMARY KEY (id)
);

CREATE TABLE linkuserprojectv2 (
    project_id integer NOT NULL,
    user_id integer NOT NULL,
    CONSTRAINT pk_linkuserprojectv2 PRIMARY KEY (project_id, user_id),
    CONSTRAINT fk_linkuserprojectv2_project_id_projectv2 FOREIGN KEY (project_id) REFERENCES projectv2(id),
    CONSTRAINT fk_linkuserprojectv2_user_id_user_oauth FOREIGN KEY (user_id) REFERENCES user_oauth(id)
);

CREATE TABLE taskgroupv2 (
    id serial NOT NULL,
    user_id integer NOT NULL,
    user_group_id integer,
    origin character varying NOT NULL,
    pkg_name character varying NOT NULL,
    version character varying,
    active boolean NOT NULL,
    timestamp_created timestamp with time zone NOT NULL,
    timestamp_last_used timestamp with time zone NOT NULL,
    python_version character varying,
    pip_extras character varying,
    path character varying,
    venv_path character varying,
    archive_path character varying,
    env_info character varying,
    "venv_size_in_kB" integer,
    venv_file_number integer,
    pixi_version character varying,
    pinned_package_versions_pre jsonb DEFAULT '{}'::jsonb,
    pinned_package_versions_post jsonb DEFAULT '{}'::json,
    CONSTRAINT pk_taskgroupv2 PRIMARY KEY (id),
    CONSTRAINT fk_taskgroupv2_user_id_user_oauth FOREIGN KEY (user_id) REFERENCES user_oauth(id),
    CONSTRAINT fk_taskgroupv2_user_group_id_usergroup FOREIGN KEY (user_group_id) REFERENCES usergroup(id) ON DELETE SET NULL
);

INSERT INTO alembic_version (version_num) VALUES ('981d588fe248');
