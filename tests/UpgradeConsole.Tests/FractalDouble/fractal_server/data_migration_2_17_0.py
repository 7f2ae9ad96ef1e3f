"""fix_db() of fractal-server 2.17.0, as fractal-2.17.md §3.2 describes it: every check before any write."""
import json
import os
import re
import sys
from collections import Counter

from fractal_server import db, dotenv

OLD_ENV_FILE = ".fractal_server.env.old"
SLURM_KEYS = ["partition", "cpus_per_task", "mem", "constraint", "gres", "exclude", "nodelist", "time", "account", "extra_lines", "gpus"]
BATCHING_KEYS = ["target_cpus_per_job", "max_cpus_per_job", "target_mem_per_job", "max_mem_per_job", "target_num_jobs", "max_num_jobs"]


class ValidationError(Exception):
    pass


def log(message):
    print(f"[fix_db] {message}", flush=True)


def normalize_url(path):
    if not (path.startswith("/") or path.startswith("s3")):
        raise ValueError(f"URLs must begin with '/' or 's3'. Given: {path}")
    return os.path.normpath(path.strip())


def to_mb(value, field):
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValidationError(f"{field} must be positive")
        return value
    m = re.fullmatch(r"\s*([0-9]+)\s*([KMGT]?)\s*", str(value))
    if not m:
        raise ValidationError(f"{field}: invalid memory value {value!r}")
    number, unit = int(m.group(1)), m.group(2)
    return {"K": number // 1000, "M": number, "G": number * 1000, "T": number * 1000 * 1000, "": number}[unit]


def normalize_slurm_block(block, where):
    if not isinstance(block, dict):
        raise ValidationError(f"{where} must be an object")
    for key in block:
        if key not in SLURM_KEYS:
            raise ValidationError(f"{where}.{key}: Extra inputs are not permitted")
    out = {}
    for key in SLURM_KEYS:
        value = block.get(key)
        if key == "extra_lines":
            if key in block and value is None:
                raise ValidationError(f"{where}.extra_lines: Input should be a valid list")
            value = value if value is not None else []
        elif key == "mem" and value is not None:
            value = to_mb(value, f"{where}.mem")
        elif isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValidationError(f"{where}.{key}: String should have at least 1 character")
        elif key == "cpus_per_task" and value is not None and value <= 0:
            raise ValidationError(f"{where}.cpus_per_task: Input should be greater than 0")
        out[key] = value
    return out


def normalize_slurm_config(config):
    if not isinstance(config, dict):
        raise ValidationError("the SLURM config must be an object")
    for key in config:
        if key not in ("default_slurm_config", "gpu_slurm_config", "batching_config", "user_local_exports"):
            raise ValidationError(f"{key}: Extra inputs are not permitted")
    if "default_slurm_config" not in config:
        raise ValidationError("default_slurm_config: Field required")
    if "batching_config" not in config:
        raise ValidationError("batching_config: Field required")
    batching = config["batching_config"]
    for key in BATCHING_KEYS:
        if batching.get(key) is None:
            raise ValidationError(f"batching_config.{key}: Field required")
    if "user_local_exports" in config and config["user_local_exports"] is None:
        raise ValidationError("user_local_exports: Input should be a valid dictionary")
    gpu = config.get("gpu_slurm_config")
    return {
        "default_slurm_config": normalize_slurm_block(config["default_slurm_config"], "default_slurm_config"),
        "gpu_slurm_config": normalize_slurm_block(gpu, "gpu_slurm_config") if gpu is not None else None,
        "batching_config": {k: (to_mb(batching[k], k) if "mem" in k else batching[k]) for k in BATCHING_KEYS},
        "user_local_exports": config.get("user_local_exports") or {},
    }


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def prepare_resource_data(old, resource_type, settings):
    versions = {}
    for minor in ("9", "10", "11", "12"):
        value = old.get(f"FRACTAL_TASKS_PYTHON_3_{minor}")
        if value:
            versions[f"3.{minor}"] = value
    tasks_python = {
        "default_version": old["FRACTAL_TASKS_PYTHON_DEFAULT_VERSION"],
        "versions": versions,
        "pip_cache_dir": old.get("FRACTAL_PIP_CACHE_DIR"),
    }
    if tasks_python["default_version"] not in versions:
        raise ValidationError(f"tasks_python_config: default_version {tasks_python['default_version']} is not in versions {sorted(versions)}")
    for path in versions.values():
        if not path.startswith("/"):
            raise ValidationError(f"tasks_python_config: {path} is not absolute")
    pixi = {}
    if old.get("FRACTAL_PIXI_CONFIG_FILE"):
        raw = read_json(old["FRACTAL_PIXI_CONFIG_FILE"])
        if raw.get("default_version") not in (raw.get("versions") or {}):
            raise ValidationError("tasks_pixi_config: default_version must be a key of versions")
        pixi = {"PIXI_CONCURRENT_SOLVES": 4, "PIXI_CONCURRENT_DOWNLOADS": 4, "TOKIO_WORKER_THREADS": 2,
                "DEFAULT_ENVIRONMENT": "default", "DEFAULT_PLATFORM": "linux-64", "SLURM_CONFIG": None, **raw}
    data = {
        "type": resource_type,
        "name": "Resource Name",
        "host": None,
        "tasks_python_config": tasks_python,
        "tasks_pixi_config": pixi,
        "tasks_local_dir": old["FRACTAL_TASKS_DIR"],
        "jobs_local_dir": old["FRACTAL_RUNNER_WORKING_BASE_DIR"],
        "jobs_poll_interval": int(old.get("FRACTAL_SLURM_POLL_INTERVAL", 15)),
        "jobs_slurm_python_worker": None,
    }
    for key in ("tasks_local_dir", "jobs_local_dir"):
        if not data[key].startswith("/"):
            raise ValidationError(f"{key}: {data[key]} is not absolute")
    if resource_type == "local":
        path = old.get("FRACTAL_LOCAL_CONFIG_FILE")
        data["jobs_runner_config"] = read_json(path) if path and os.path.exists(path) else {"parallel_tasks_per_job": None}
    else:
        data["jobs_slurm_python_worker"] = old["FRACTAL_SLURM_WORKER_PYTHON"]
        data["jobs_runner_config"] = normalize_slurm_config(read_json(old["FRACTAL_SLURM_CONFIG_FILE"]))
    if resource_type == "slurm_ssh":
        hosts = [r["ssh_host"] for r in db.rows(settings, "SELECT ssh_host FROM user_settings WHERE ssh_host IS NOT NULL")]
        counts = Counter(hosts).most_common()
        if len(counts) > 1:
            log(f"MOST FREQUENT HOST: {counts[0][0]}")
        data["host"] = counts[0][0]
        if pixi and not pixi.get("SLURM_CONFIG"):
            raise ValidationError("tasks_pixi_config: SLURM_CONFIG is required for slurm_ssh")
    return data


def prepare_profiles_and_users(settings, resource_type):
    users = db.rows(settings, """
        SELECT u.id, u.email, u.user_settings_id, s.project_dir, s.slurm_user, s.slurm_accounts,
               s.ssh_username, s.ssh_private_key_path, s.ssh_tasks_dir, s.ssh_jobs_dir
        FROM user_oauth u LEFT JOIN user_settings s ON s.id = u.user_settings_id
        WHERE u.is_active AND u.is_verified ORDER BY u.id""")
    groups = {}
    for user in users:
        email = user["email"]
        if user["user_settings_id"] is None:
            sys.exit(f"User {email} is active but user.user_settings_id=None.")
        if user["project_dir"] is None:
            sys.exit(f"User {email} is active and verified but their user settings have project_dir=None.")
        if resource_type == "local":
            username, profile = None, {}
        elif resource_type == "slurm_sudo":
            if user["slurm_user"] is None:
                sys.exit(f"User {email} is active and verified but their user settings have slurm_user=None.")
            username, profile = user["slurm_user"], {}
            if not username.strip():
                raise ValidationError("profile: username must be non-empty")
        else:
            for key in ("ssh_username", "ssh_private_key_path", "ssh_tasks_dir", "ssh_jobs_dir"):
                if user[key] is None:
                    sys.exit(f"User {email} is active and verified but their user settings have {key}=None.")
            username = user["ssh_username"]
            profile = {
                "ssh_key_path": user["ssh_private_key_path"],
                "tasks_remote_dir": normalize_url(user["ssh_tasks_dir"]),
                "jobs_remote_dir": normalize_url(user["ssh_jobs_dir"]),
            }
            for key, value in profile.items():
                if not value.startswith("/"):
                    raise ValidationError(f"profile.{key}: {value} is not absolute")
        profile = {"name": f"Profile {username}", "username": username, "resource_type": resource_type, **profile}
        accounts = user["slurm_accounts"] or []
        if len(set(accounts)) != len(accounts) or any(not a.strip() for a in accounts):
            raise ValidationError(f"slurm_accounts of {email} must be unique non-empty strings")
        update = {"id": user["id"], "project_dir": normalize_url(user["project_dir"]), "slurm_accounts": accounts}
        group = groups.setdefault(username, {"profile": profile, "users": []})
        if group["profile"] != profile:
            log(f"Profile data mismatch for username {username}: {group['profile']} != {profile}")
            sys.exit("Profile data mismatch.")
        group["users"].append(update)
    return list(groups.values())


def fix_db(settings):
    log("START")
    old = dotenv.values(OLD_ENV_FILE)
    resource_type = settings["FRACTAL_RUNNER_BACKEND"]
    resource = prepare_resource_data(old, resource_type, settings)
    groups = prepare_profiles_and_users(settings, resource_type)

    resource_id = db.scalar(settings, """
        INSERT INTO resource (type, name, timestamp_created, host, jobs_local_dir, jobs_runner_config, jobs_slurm_python_worker,
                              jobs_poll_interval, tasks_local_dir, tasks_python_config, tasks_pixi_config)
        VALUES (:'type', :'name', now(), NULLIF(:'host', ''), :'jobs_local_dir', :'jobs_runner_config'::jsonb,
                NULLIF(:'worker', ''), :'poll'::int, :'tasks_local_dir', :'tasks_python'::jsonb, :'pixi'::jsonb)
        RETURNING id""", {
        "type": resource["type"], "name": resource["name"], "host": resource["host"] or "",
        "jobs_local_dir": resource["jobs_local_dir"], "jobs_runner_config": json.dumps(resource["jobs_runner_config"]),
        "worker": resource["jobs_slurm_python_worker"] or "", "poll": resource["jobs_poll_interval"],
        "tasks_local_dir": resource["tasks_local_dir"], "tasks_python": json.dumps(resource["tasks_python_config"]),
        "pixi": json.dumps(resource["tasks_pixi_config"]),
    }).splitlines()[0]
    log(f"Created resource {resource_id}")
    db.run(settings, "UPDATE taskgroupv2 SET resource_id = :'r'::int;", {"r": resource_id})
    db.run(settings, "UPDATE projectv2 SET resource_id = :'r'::int;", {"r": resource_id})
    for group in groups:
        profile = group["profile"]
        script = ["BEGIN;", """
            INSERT INTO profile (resource_id, resource_type, name, username, ssh_key_path, jobs_remote_dir, tasks_remote_dir)
            VALUES (:'r'::int, :'rtype', :'name', NULLIF(:'username', ''), NULLIF(:'key', ''), NULLIF(:'jobs', ''), NULLIF(:'tasks', ''))
            RETURNING id \\gset p_"""]
        variables = {"r": resource_id, "rtype": profile["resource_type"], "name": profile["name"], "username": profile["username"] or "",
                     "key": profile.get("ssh_key_path") or "", "jobs": profile.get("jobs_remote_dir") or "", "tasks": profile.get("tasks_remote_dir") or ""}
        for i, user in enumerate(group["users"]):
            variables[f"u{i}"] = user["id"]
            variables[f"d{i}"] = user["project_dir"]
            variables[f"a{i}"] = json.dumps(user["slurm_accounts"])
            script.append(f"UPDATE user_oauth SET profile_id = :p_id, project_dir = :'d{i}', "
                          f"slurm_accounts = ARRAY(SELECT jsonb_array_elements_text(:'a{i}'::jsonb)) WHERE id = :'u{i}'::int;")
        script.append("COMMIT;")
        db.run(settings, "\n".join(script), variables)
        log(f"Created {profile['name']} for {len(group['users'])} user(s)")
    log("END - all ok.")
