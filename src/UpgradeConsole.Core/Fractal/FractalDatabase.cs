using Npgsql;

namespace UpgradeConsole.Core.Fractal;

/// <summary>The outcome of a change to a Fractal user: applied (with before and after), refused, or conflicting.</summary>
public sealed record UserChange(bool Applied, FractalUser? Before, FractalUser? After, string? Error, bool Conflict = false)
{
    public static UserChange Refused(string error, FractalUser? current = null) => new(false, current, current, error);
}

/// <summary>What the preflight reads from a Fractal database.</summary>
public sealed record DatabaseFacts(string? AlembicVersion, IReadOnlyList<FractalUser> Users, IReadOnlyList<string> SshHosts, long SizeBytes, int ServerMajor);

/// <summary>
/// Reads and fixes a fractal-server 2.16 database. Every write runs in a transaction that locks the
/// user row and compares it with the version the admin was shown: if it changed meanwhile, nothing
/// is written and the current values come back.
/// </summary>
public sealed class FractalDatabase(string connectionString)
{
    /// <summary>
    /// <c>username</c> is read through <c>to_jsonb</c> because 2.17.0's set-db drops the column: the same query then
    /// still works between set-db and update-db-data, when a failed data migration sends the admin back here.
    /// </summary>
    private const string UserColumns = """
        u.id, u.email, to_jsonb(u) ->> 'username', u.is_active, u.is_verified, u.is_superuser, u.user_settings_id,
        s.project_dir, s.slurm_user, s.slurm_accounts::text, s.ssh_host, s.ssh_username,
        s.ssh_private_key_path, s.ssh_tasks_dir, s.ssh_jobs_dir
        """;

    /// <summary>
    /// Groups of every user in one pass. (A per-user subquery is quadratic: linkusergroup's key
    /// starts with group_id, so looking up by user_id scans the table, 5 s for 10,000 users.)
    /// </summary>
    private const string AllUsers = $$"""
        SELECT {{UserColumns}}, COALESCE(gr.groups, '{}')
        FROM user_oauth u
        LEFT JOIN user_settings s ON s.id = u.user_settings_id
        LEFT JOIN (SELECT l.user_id, array_agg(g.name ORDER BY g.name) AS groups
                   FROM linkusergroup l JOIN usergroup g ON g.id = l.group_id GROUP BY l.user_id) gr ON gr.user_id = u.id
        ORDER BY u.id
        """;

    private const string OneUserForUpdate = $$"""
        SELECT {{UserColumns}},
               COALESCE((SELECT array_agg(g.name ORDER BY g.name) FROM linkusergroup l JOIN usergroup g ON g.id = l.group_id WHERE l.user_id = u.id), '{}')
        FROM user_oauth u LEFT JOIN user_settings s ON s.id = u.user_settings_id
        WHERE u.id = @id FOR UPDATE OF u
        """;

    public async Task<IReadOnlyList<FractalUser>> LoadUsersAsync(CancellationToken ct)
    {
        await using var conn = await OpenAsync(ct);
        return await LoadUsersAsync(conn, ct);
    }

    /// <summary>
    /// What the preflight reads from the database, over one connection: each connection through the target's forward
    /// costs a channel, an authentication and Npgsql's first round trips.
    /// </summary>
    public async Task<DatabaseFacts> FactsAsync(CancellationToken ct)
    {
        await using var conn = await OpenAsync(ct);
        var alembic = await ScalarAsync<string>(conn, "SELECT version_num FROM alembic_version", ct);
        var users = await LoadUsersAsync(conn, ct);
        var hosts = await SshHostsAsync(conn, ct);
        var size = await ScalarAsync<long>(conn, "SELECT pg_database_size(current_database())", ct);
        var major = await ScalarAsync<int>(conn, "SELECT current_setting('server_version_num')::int / 10000", ct);
        return new DatabaseFacts(alembic, users, hosts, size, major);
    }

    private static async Task<IReadOnlyList<FractalUser>> LoadUsersAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(AllUsers, conn);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var users = new List<FractalUser>();
        while (await reader.ReadAsync(ct))
        {
            users.Add(Read(reader));
        }

        return users;
    }

    /// <summary>The schema revision (<c>alembic_version.version_num</c>).</summary>
    public async Task<string?> AlembicVersionAsync(CancellationToken ct) =>
        await ScalarAsync<string>("SELECT version_num FROM alembic_version", ct);

    public async Task<long> DatabaseSizeAsync(CancellationToken ct) =>
        await ScalarAsync<long>("SELECT pg_database_size(current_database())", ct);

    /// <summary>The server's major version (e.g. 15).</summary>
    public async Task<int> ServerMajorVersionAsync(CancellationToken ct) =>
        await ScalarAsync<int>("SELECT current_setting('server_version_num')::int / 10000", ct);

    /// <summary>
    /// A fingerprint of the user tables' contents (users, settings, groups, memberships), taken before
    /// the upgrade and compared after a rollback.
    /// </summary>
    public async Task<string> UserTablesChecksumAsync(CancellationToken ct) =>
        await ScalarAsync<string>("""
            SELECT md5(
                coalesce((SELECT string_agg(t::text, '|' ORDER BY t.id) FROM user_oauth t), '') || '#' ||
                coalesce((SELECT string_agg(t::text, '|' ORDER BY t.id) FROM user_settings t), '') || '#' ||
                coalesce((SELECT string_agg(t::text, '|' ORDER BY t.id) FROM usergroup t), '') || '#' ||
                coalesce((SELECT string_agg(t::text, '|' ORDER BY t.group_id, t.user_id) FROM linkusergroup t), ''))
            """, ct);

    /// <summary>Post-upgrade facts: resources, and active+verified users without a profile (2.17 schema only).</summary>
    public async Task<(long Resources, IReadOnlyList<string> UnlinkedMigrated)> PostUpgradeAsync(IEnumerable<int> migratedUserIds, CancellationToken ct)
    {
        var resources = await ScalarAsync<long>("SELECT count(*) FROM resource", ct);
        await using var conn = await OpenAsync(ct);
        await using var cmd = new NpgsqlCommand("SELECT email FROM user_oauth WHERE id = ANY(@ids) AND (profile_id IS NULL OR project_dir = '/PLACEHOLDER') ORDER BY id", conn);
        cmd.Parameters.AddWithValue("ids", migratedUserIds.ToArray());
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var unlinked = new List<string>();
        while (await reader.ReadAsync(ct))
        {
            unlinked.Add(reader.GetString(0));
        }

        return (resources, unlinked);
    }

    /// <summary>Distinct non-empty <c>user_settings.ssh_host</c> values (slurm_ssh takes the most frequent).</summary>
    public async Task<IReadOnlyList<string>> SshHostsAsync(CancellationToken ct)
    {
        await using var conn = await OpenAsync(ct);
        return await SshHostsAsync(conn, ct);
    }

    private static async Task<IReadOnlyList<string>> SshHostsAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT ssh_host FROM user_settings WHERE ssh_host IS NOT NULL AND ssh_host <> '' GROUP BY ssh_host ORDER BY count(*) DESC, ssh_host", conn);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var hosts = new List<string>();
        while (await reader.ReadAsync(ct))
        {
            hosts.Add(reader.GetString(0));
        }

        return hosts;
    }

    public Task<UserChange> SetActiveVerifiedAsync(int id, string expectedVersion, bool active, bool verified, CancellationToken ct) =>
        ChangeAsync(id, expectedVersion, async (conn, tx, user) =>
        {
            await ExecuteAsync(conn, tx, "UPDATE user_oauth SET is_active = @a, is_verified = @v WHERE id = @id", ct, ("a", active), ("v", verified), ("id", id));
            return null;
        }, ct);

    public Task<UserChange> SetProjectDirAsync(int id, string expectedVersion, string value, CancellationToken ct)
    {
        if (ProjectDirRule.Check(value) is { } problem)
        {
            return Task.FromResult(UserChange.Refused("project_dir " + problem));
        }

        return SetSettingAsync(id, expectedVersion, "project_dir", value.Trim(), ct);
    }

    public Task<UserChange> SetSlurmUserAsync(int id, string expectedVersion, string value, CancellationToken ct)
    {
        var trimmed = value.Trim();
        if (!Remote.HostNames.IsValidUser(trimmed))
        {
            return Task.FromResult(UserChange.Refused($"'{trimmed}' is not a valid user name (letters, digits, '.', '_', '-', not starting with '-')."));
        }

        return SetSettingAsync(id, expectedVersion, "slurm_user", trimmed, ct);
    }

    /// <summary>Gives a user who has none the empty settings row 2.16 creates on registration.</summary>
    public Task<UserChange> CreateSettingsRowAsync(int id, string expectedVersion, CancellationToken ct) =>
        ChangeAsync(id, expectedVersion, async (conn, tx, user) =>
        {
            if (user.SettingsId is not null)
            {
                return "This user has a settings row already.";
            }

            await using var insert = new NpgsqlCommand("INSERT INTO user_settings (slurm_accounts) VALUES ('[]'::jsonb) RETURNING id", conn, tx);
            var settingsId = (int)(await insert.ExecuteScalarAsync(ct))!;
            await ExecuteAsync(conn, tx, "UPDATE user_oauth SET user_settings_id = @s WHERE id = @id", ct, ("s", settingsId), ("id", id));
            return null;
        }, ct);

    private Task<UserChange> SetSettingAsync(int id, string expectedVersion, string column, string value, CancellationToken ct) =>
        ChangeAsync(id, expectedVersion, async (conn, tx, user) =>
        {
            if (user.SettingsId is not { } settingsId)
            {
                return "This user has no settings row; create it first.";
            }

            // The column name comes from this class, never from input.
            await ExecuteAsync(conn, tx, $"UPDATE user_settings SET {column} = @value WHERE id = @s", ct, ("value", value), ("s", settingsId));
            return null;
        }, ct);

    private async Task<UserChange> ChangeAsync(int id, string expectedVersion, Func<NpgsqlConnection, NpgsqlTransaction, FractalUser, Task<string?>> change, CancellationToken ct)
    {
        await using var conn = await OpenAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var before = await LoadUserForUpdateAsync(conn, tx, id, ct);
        if (before is null)
        {
            return UserChange.Refused($"User {id} no longer exists.");
        }

        if (before.Version != expectedVersion)
        {
            await tx.RollbackAsync(ct);
            return new UserChange(false, before, before, "Someone changed this user after the page was shown; here are the current values. Check them and try again.", Conflict: true);
        }

        if (await change(conn, tx, before) is { } refusal)
        {
            await tx.RollbackAsync(ct);
            return UserChange.Refused(refusal, before);
        }

        var after = await LoadUserForUpdateAsync(conn, tx, id, ct);
        await tx.CommitAsync(ct);
        return new UserChange(true, before, after, null);
    }

    private static async Task<FractalUser?> LoadUserForUpdateAsync(NpgsqlConnection conn, NpgsqlTransaction tx, int id, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(OneUserForUpdate, conn, tx);
        cmd.Parameters.AddWithValue("id", id);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Read(reader) : null;
    }

    private static FractalUser Read(NpgsqlDataReader r) => new()
    {
        Id = r.GetInt32(0),
        Email = r.GetString(1),
        Username = r.IsDBNull(2) ? null : r.GetString(2),
        IsActive = r.GetBoolean(3),
        IsVerified = r.GetBoolean(4),
        IsSuperuser = r.GetBoolean(5),
        SettingsId = r.IsDBNull(6) ? null : r.GetInt32(6),
        ProjectDir = r.IsDBNull(7) ? null : r.GetString(7),
        SlurmUser = r.IsDBNull(8) ? null : r.GetString(8),
        SlurmAccounts = r.IsDBNull(9) ? "[]" : r.GetString(9),
        SshHost = r.IsDBNull(10) ? null : r.GetString(10),
        SshUsername = r.IsDBNull(11) ? null : r.GetString(11),
        SshPrivateKeyPath = r.IsDBNull(12) ? null : r.GetString(12),
        SshTasksDir = r.IsDBNull(13) ? null : r.GetString(13),
        SshJobsDir = r.IsDBNull(14) ? null : r.GetString(14),
        Groups = r.GetFieldValue<string[]>(15),
    };

    /// <summary>The same server, credentials and forward, another database (a rehearsal's scratch copy).</summary>
    public FractalDatabase WithDatabase(string database) =>
        new(new NpgsqlConnectionStringBuilder(connectionString) { Database = database }.ConnectionString);

    /// <summary>The same credentials against another server (a rehearsal's throwaway cluster, through a forward of its own).</summary>
    public FractalDatabase WithEndpoint(string host, int port, string database) =>
        new(new NpgsqlConnectionStringBuilder(connectionString) { Host = host, Port = port, Database = database }.ConnectionString);

    /// <summary>What 2.17.0's data migration left (2.17 schema): every user's profile and project_dir, and the resources.</summary>
    public async Task<MigratedData> MigratedDataAsync(CancellationToken ct)
    {
        await using var conn = await OpenAsync(ct);
        var users = new List<MigratedUser>();
        await using (var cmd = new NpgsqlCommand("SELECT u.id, u.email, p.name, u.project_dir FROM user_oauth u LEFT JOIN profile p ON p.id = u.profile_id ORDER BY u.id", conn))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                users.Add(new MigratedUser(reader.GetInt32(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
            }
        }

        var resources = new List<(string, string)>();
        await using (var cmd = new NpgsqlCommand("SELECT name, type FROM resource ORDER BY id", conn))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                resources.Add((reader.GetString(0), reader.GetString(1)));
            }
        }

        return new MigratedData(users, resources);
    }

    private async Task<NpgsqlConnection> OpenAsync(CancellationToken ct)
    {
        var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync(ct);
        return conn;
    }

    private async Task<T> ScalarAsync<T>(string sql, CancellationToken ct)
    {
        await using var conn = await OpenAsync(ct);
        return await ScalarAsync<T>(conn, sql, ct);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private static async Task ExecuteAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, CancellationToken ct, params (string Name, object Value)[] parameters)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value);
        }

        await cmd.ExecuteNonQueryAsync(ct);
    }
}
