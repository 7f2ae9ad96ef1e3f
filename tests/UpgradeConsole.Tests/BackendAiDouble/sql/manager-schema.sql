-- The part of the Backend.AI manager's schema the dashboard reads, in its shape (lablup/backend.ai,
-- src/ai/backend/manager/models/kernel.py and agent.py; alembic's own alembic_version table): agents by id,
-- kernels with session_id, agent, cluster_role and status (the KernelStatus name as text, PENDING by default).
CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
CREATE TABLE agents (
    id varchar(64) PRIMARY KEY,
    status varchar(64) NOT NULL DEFAULT 'ALIVE',
    addr varchar(128) NOT NULL,
    version varchar(64) NOT NULL DEFAULT ''
);
CREATE TABLE kernels (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id uuid NOT NULL,
    session_name varchar(64),
    cluster_role varchar(16) NOT NULL DEFAULT 'main',
    cluster_idx integer NOT NULL DEFAULT 0,
    agent varchar(64) REFERENCES agents(id),
    agent_addr varchar(128),
    status varchar(64) NOT NULL DEFAULT 'PENDING',
    created_at timestamptz DEFAULT now(),
    terminated_at timestamptz
);
CREATE INDEX ix_kernels_status_role ON kernels (status, cluster_role);
