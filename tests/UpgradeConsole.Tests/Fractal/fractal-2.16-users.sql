-- Users covering every case the 2.17.0 data migration distinguishes (backend slurm -> slurm_sudo).
-- The bcrypt hash is of "1234" (Fractal's default admin password); nobody logs in with it here.
INSERT INTO usergroup (id, name, timestamp_created, viewer_paths) VALUES
    (1, 'All', '2025-10-01 10:00:00+00', '[]'),
    (2, 'lab-a', '2025-10-01 10:00:00+00', '["/shared/lab-a"]');
SELECT setval('usergroup_id_seq', 2);

INSERT INTO user_settings (id, slurm_accounts, slurm_user, project_dir, ssh_host, ssh_username, ssh_private_key_path, ssh_tasks_dir, ssh_jobs_dir) VALUES
    (1, '[]', 'fractal-admin', '/shared/projects/admin', NULL, NULL, NULL, NULL, NULL),
    (2, '["lab-a"]', 'alice', '/shared/projects/alice', 'login.cluster', 'alice', '/keys/alice', '/remote/alice/tasks', '/remote/alice/jobs'),
    (3, '[]', 'bob', NULL, NULL, NULL, NULL, NULL, NULL),
    (4, '[]', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (5, '[]', 'dave', '/shared/projects/dave', NULL, NULL, NULL, NULL, NULL),
    (6, '[]', NULL, '/shared/projects/frank', NULL, NULL, NULL, NULL, NULL),
    (7, '[]', 'labshared', '/shared/projects/gina', NULL, NULL, NULL, NULL, NULL),
    (8, '[]', 'labshared', '/shared/projects/hank', NULL, NULL, NULL, NULL, NULL),
    (9, '[]', 'ivan', 'data/ivan', NULL, NULL, NULL, NULL, NULL);
SELECT setval('user_settings_id_seq', 9);

INSERT INTO user_oauth (id, email, hashed_password, is_active, is_superuser, is_verified, username, user_settings_id) VALUES
    (1, 'admin@fractal.xy', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', true, true, true, 'admin', 1),
    (2, 'alice@example.org', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', true, false, true, 'alice', 2),
    (3, 'bob@example.org', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', true, false, true, 'bob', 3),
    (4, 'carol@example.org', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', true, false, false, NULL, 4),
    (5, 'dave@example.org', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', false, false, true, 'dave', 5),
    (6, 'erin@example.org', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', true, false, true, 'erin', NULL),
    (7, 'frank@example.org', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', true, false, true, 'frank', 6),
    (8, 'gina@example.org', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', true, false, true, 'gina', 7),
    (9, 'hank@example.org', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', true, false, true, 'hank', 8),
    (10, 'ivan@example.org', '$2b$12$iXtpqqZyWP8KmoFfOCbJ6.ZUq9U.lgbR.Prcy5YMM.l9BGzhkbIze', true, false, true, 'ivan', 9);
SELECT setval('user_oauth_id_seq', 10);

INSERT INTO linkusergroup (group_id, user_id, timestamp_created)
    SELECT 1, id, '2025-10-01 10:00:00+00' FROM user_oauth;
INSERT INTO linkusergroup (group_id, user_id, timestamp_created) VALUES
    (2, 2, '2025-10-02 10:00:00+00'), (2, 8, '2025-10-02 10:00:00+00');

INSERT INTO projectv2 (id, name, timestamp_created) VALUES (1, 'alice-project', '2025-10-03 10:00:00+00');
SELECT setval('projectv2_id_seq', 1);
INSERT INTO linkuserprojectv2 (project_id, user_id) VALUES (1, 2);
INSERT INTO taskgroupv2 (id, user_id, user_group_id, origin, pkg_name, version, active, timestamp_created, timestamp_last_used) VALUES
    (1, 1, 1, 'pypi', 'fractal-tasks-core', '1.5.0', true, '2025-10-03 10:00:00+00', '2025-10-03 10:00:00+00');
SELECT setval('taskgroupv2_id_seq', 1);
