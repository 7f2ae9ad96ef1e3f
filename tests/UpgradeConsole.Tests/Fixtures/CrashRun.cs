using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A fractal-server 2.16 → 2.17.0 run planned on a data directory of its own (SQLite) and moved by real
/// dashboard processes that a test kills (SIGKILL, from outside at a chosen moment, or from inside at an
/// armed crash point, see <see cref="CrashPoints"/>) and starts again. Reads what the run stored straight
/// from its database file and the step directories on the target, to check nothing was lost or repeated.
/// </summary>
public sealed partial class CrashRun : IAsyncDisposable
{
    private readonly SshServer _ssh;
    private readonly List<string> _events = [];
    private string? _token;

    private CrashRun(SshServer ssh, string data, FractalTarget fractal, int runId)
    {
        _ssh = ssh;
        Data = data;
        Fractal = fractal;
        RunId = runId;
    }

    public string Data { get; }

    public FractalTarget Fractal { get; }

    public int RunId { get; }

    /// <summary>What happened to the dashboard processes so far (starts, kills, crash points), for failure messages.</summary>
    public string Events
    {
        get
        {
            lock (_events)
            {
                return string.Join('\n', _events);
            }
        }
    }

    private string DatabaseFile => Path.Combine(Data, "upgradeconsole.db");

    /// <summary>Sets up the target and plans the run with the in-process dashboard on the data directory the processes reuse.</summary>
    public static async Task<CrashRun> PlanAsync(SshServer ssh, PostgresServer postgres, Func<UpgradeConsoleApplicationFactory, FractalTarget, Task>? prepare = null)
    {
        var data = Directory.CreateTempSubdirectory("uc-crash-").FullName;
        await using var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.Sqlite, null, data);
        var admin = await app.CreateFirstAdminAsync();
        var fractal = await FractalTarget.CreateAsync(app, admin, ssh, postgres);
        await fractal.PrepareForUpgradeAsync(ssh);
        if (prepare is not null)
        {
            await prepare(app, fractal);
        }
        // The plan page is interactive (no form to post): the run is planned through its service, as the page does.
        var planned = await app.AsAsync<RunService, RunResult>(UpgradeConsoleApplicationFactory.AdminEmail, (s, actor) =>
            s.PlanAsync(fractal.TargetId, "fractal-2.16-to-2.17.0", null, null, new Dictionary<string, string>(), actor, CancellationToken.None));
        Assert.True(planned.Succeeded, planned.Error);
        var runId = planned.RunId!.Value;
        return new CrashRun(ssh, data, fractal, runId);
    }

    /// <summary>Starts a dashboard process, armed with <paramref name="crashAt"/> if given, and starts the run if it is still planned.</summary>
    public async Task<DashboardProcess> StartDashboardAsync(string? crashAt = null)
    {
        var settings = crashAt is null ? null : new Dictionary<string, string> { [CrashPoints.Variable] = crashAt };
        var process = await DashboardProcess.StartAsync(Data, settings);
        Note($"dashboard {process.ProcessId} started{(crashAt is null ? "" : " armed with " + crashAt)}");
        if (await StateAsync() == "Planned")
        {
            // The run page is interactive: the start goes through the API, with an Admin's token made by the server's CLI.
            _token ??= (await ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), "tokens", "create", "--user", UpgradeConsoleApplicationFactory.AdminEmail, "--name", "crash test", "--role", "Admin"],
                environment: new Dictionary<string, string?> { ["UpgradeConsole__DataDirectory"] = Data, ["DOTNET_ENVIRONMENT"] = "Production", ["ASPNETCORE_ENVIRONMENT"] = "Production" },
                workingDirectory: AppContext.BaseDirectory)).StandardOutput.Trim();
            using var api = ApiTokens.Client(process.BaseUrl, _token);
            using var start = await api.PostAsync($"/api/v1/runs/{RunId}/start", null);
            Assert.True(start.IsSuccessStatusCode, $"start: {(int)start.StatusCode} {await start.Content.ReadAsStringAsync()}");
        }

        return process;
    }

    /// <summary>
    /// Waits until the process died at its crash point (true) or the run stopped moving (false); fails after <paramref name="timeout"/>.
    /// </summary>
    public async Task<bool> WaitForCrashOrEndAsync(DashboardProcess process, TimeSpan timeout)
    {
        await Eventually.TrueAsync(async () => process.HasExited || !IsMoving(await StateAsync()), timeout,
            () => $"neither a crash nor the end within {timeout}\n{Events}\n{process.Output}");
        if (process.HasExited)
        {
            Note($"dashboard {process.ProcessId} died at its crash point");
            return true;
        }

        return false;
    }

    /// <summary>Kills the process from outside (SIGKILL) after <paramref name="delay"/>, unless the run stops moving first; true if it killed.</summary>
    public async Task<bool> KillAfterAsync(DashboardProcess process, TimeSpan delay)
    {
        // The seeded moment of the kill: the wait ends early only when the run has stopped moving.
        if (await Eventually.WithinAsync(async () => !IsMoving(await StateAsync()), delay))
        {
            return false;
        }

        var at = await LastLineAsync();
        await process.KillAsync();
        Note($"dashboard {process.ProcessId} killed after {delay.TotalSeconds:0.0} s; last stored line: {at}");
        return true;
    }

    /// <summary>Waits until the run stops moving, and returns its state.</summary>
    public async Task<string> WaitForEndAsync(DashboardProcess process, TimeSpan timeout)
    {
        var state = "";
        await Eventually.TrueAsync(async () =>
        {
            Assert.False(process.HasExited, $"the dashboard exited\n{Events}\n{process.Output}");
            return !IsMoving(state = await StateAsync());
        }, timeout, () => $"the run is still {state} after {timeout}\n{Events}\n{process.Output}");
        return state;
    }

    public void Note(string line)
    {
        lock (_events)
        {
            _events.Add($"{TimeProvider.System.GetUtcNow():HH:mm:ss.fff} {line}");
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"run {RunId}: {line}");
    }

    private static bool IsMoving(string state) => state is "Planned" or "Running" or "RollingBack";

    public Task<string> StateAsync() => ScalarAsync<string>("""SELECT "State" FROM "Runs" WHERE "Id" = @run""");

    public async Task<StoredRun> ReadAsync()
    {
        await using var connection = await OpenAsync();
        var run = new StoredRun();
        await using (var query = Command(connection, """SELECT "State", "RemoteKey", "BackupPath", "BackupSize", "BackupSha256", "KeptEnvFile", "RunbookId" FROM "Runs" WHERE "Id" = @run"""))
        await using (var reader = await query.ExecuteReaderAsync())
        {
            Assert.True(await reader.ReadAsync());
            run.State = reader.GetString(0);
            run.RemoteKey = reader.GetString(1);
            run.BackupPath = reader.IsDBNull(2) ? null : reader.GetString(2);
            run.BackupSize = reader.IsDBNull(3) ? null : reader.GetInt64(3);
            run.BackupSha256 = reader.IsDBNull(4) ? null : reader.GetString(4);
            run.KeptEnvFile = reader.IsDBNull(5) ? null : reader.GetString(5);
        }

        await using (var query = Command(connection, """SELECT "Index", "Key", "Title", "State", "Attempt", "StepId", "IsRollback" FROM "RunPhases" WHERE "RunId" = @run ORDER BY "Index" """))
        await using (var reader = await query.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                run.Phases.Add(new StoredPhase(reader.GetInt32(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4), reader.IsDBNull(5) ? null : reader.GetString(5), reader.GetBoolean(6)));
            }
        }

        await using (var query = Command(connection, """SELECT "FirstSequence", "LastSequence", "PhaseIndex", "Text" FROM "RunLogChunks" WHERE "RunId" = @run ORDER BY "FirstSequence" """))
        await using (var reader = await query.ExecuteReaderAsync())
        {
            var expected = 1L;
            while (await reader.ReadAsync())
            {
                // Numbered 1..N without a gap or a repeat, each chunk holding as many lines as its numbers say.
                Assert.Equal(expected, reader.GetInt64(0));
                var lines = reader.GetString(3).Split('\n');
                Assert.Equal(reader.GetInt64(1) - reader.GetInt64(0) + 1, lines.Length);
                expected = reader.GetInt64(1) + 1;
                run.Lines.AddRange(lines.Select(l => new StoredLine(reader.GetInt32(2), l)));
            }
        }

        await using (var query = Command(connection, """SELECT "Details" FROM "AuditEvents" WHERE "Action" = 'run.phase' AND "Subject" = @subject ORDER BY "Id" """))
        {
            var subject = query.CreateParameter();
            subject.ParameterName = "@subject";
            subject.Value = $"run {RunId}";
            query.Parameters.Add(subject);
            await using var reader = await query.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                run.PhaseEvents.Add(JsonDocument.Parse(reader.GetString(0)).RootElement.Clone());
            }
        }

        return run;
    }

    /// <summary>The step directories of the run on the target, and each one's log.</summary>
    public async Task<IReadOnlyDictionary<string, string>> StepLogsAsync(string remoteKey)
    {
        var dir = $"~/.upgradeconsole/runs/run-{RunId}-{remoteKey}";
        var listing = await _ssh.RunAsync($"ls -1 {dir}");
        Assert.Equal(0, listing.ExitCode);
        var logs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var step in listing.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            logs[step] = (await _ssh.RunAsync($"cat {dir}/{step}/log")).StandardOutput;
        }

        return logs;
    }

    /// <summary>
    /// Everything the crash test asks of a run that was killed any number of times: it ended where an
    /// uninterrupted run ends without anyone deciding anything; its log is numbered without gaps; each remote
    /// phase's lines are its step's log on the target, once each, in order; one step directory per attempt;
    /// the facts the phases learned are recorded, each phase's audit event once; and, given the stored log of
    /// an uninterrupted run, the same lines (ignoring the lines about interruptions, step output compared to
    /// the host instead, values that differ between two targets normalized).
    /// </summary>
    public async Task<StoredRun> AssertConsistentAsync(StoredRun? reference = null)
    {
        var run = await ReadAsync();
        var context = $"\n{Events}\n--- log ---\n{string.Join('\n', run.Lines.Select(l => $"[{l.PhaseIndex}] {l.Text}"))}";
        Assert.True(run.State == "WaitingForChecklist", $"run is {run.State}{context}");
        var automatic = run.Phases.Where(p => !p.IsRollback && p.Key != "checklist").ToList();
        Assert.All(automatic, p => Assert.True(p.State == "Succeeded" && p.Attempt == 1, $"{p.Key} is {p.State}, attempt {p.Attempt}{context}"));

        // Remote lines equal the host's step logs; one step directory per attempt, none more.
        var steps = await StepLogsAsync(run.RemoteKey);
        var remote = automatic.Where(p => p.StepId is not null).ToList();
        Assert.Equal(remote.Select(p => p.StepId!).Order(StringComparer.Ordinal), steps.Keys.Order(StringComparer.Ordinal));
        foreach (var phase in remote)
        {
            var stored = run.Lines.Where(l => l.PhaseIndex == phase.Index && !l.Text.StartsWith("── ", StringComparison.Ordinal)).Select(l => l.Text).ToList();
            var host = steps[phase.StepId!].Split('\n').ToList();
            if (host[^1].Length == 0)
            {
                host.RemoveAt(host.Count - 1);
            }

            Assert.True(host.SequenceEqual(stored), $"{phase.Key}: stored\n{string.Join('\n', stored)}\n--- host ---\n{string.Join('\n', host)}{context}");
        }

        // Every phase says where it starts and ends, once.
        foreach (var phase in automatic)
        {
            Assert.True(run.Lines.Count(l => l.Text == $"── {phase.Title}") == 1, $"header of {phase.Key}{context}");
            Assert.True(run.Lines.Count(l => l.Text.StartsWith($"── {phase.Title}: done", StringComparison.Ordinal)) == 1, $"end of {phase.Key}{context}");
        }

        // The facts: the dump's size and checksum (and they are the dump's), the env diff, one audit event per phase.
        Assert.NotNull(run.BackupPath);
        var dump = (await _ssh.RunAsync($"stat -c %s {run.BackupPath} && sha256sum {run.BackupPath} | cut -d' ' -f1")).StandardOutput.Split('\n');
        Assert.Equal(dump[0], run.BackupSize?.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(dump[1], run.BackupSha256);
        Assert.NotNull(run.KeptEnvFile);
        foreach (var phase in automatic)
        {
            Assert.True(run.PhaseEvents.Count(e => e.GetProperty("phase").GetString() == phase.Key) == 1, $"audit events of {phase.Key}: {string.Join("\n", run.PhaseEvents)}");
        }

        var backup = run.PhaseEvents.Single(e => e.GetProperty("phase").GetString() == "backup").GetProperty("facts");
        Assert.Equal(run.BackupSha256, backup.GetProperty("sha256").GetString());
        var envWrite = run.PhaseEvents.Single(e => e.GetProperty("phase").GetString() == "env-write").GetProperty("facts");
        var changes = envWrite.GetProperty("changes").EnumerateArray().Select(c => c.GetString()!).ToList();
        Assert.NotEmpty(changes);
        var envPhase = automatic.Single(p => p.Key == "env-write").Index;
        Assert.Equal(changes, run.Lines.Where(l => l.PhaseIndex == envPhase && changes.Contains(l.Text)).Select(l => l.Text));
        Assert.Single(run.Lines, l => l.Text.StartsWith("Wrote .fractal_server.env; the 2.16 version is kept as", StringComparison.Ordinal));

        if (reference is not null)
        {
            var expected = Skeleton(reference);
            var actual = Skeleton(run);
            var first = Enumerable.Range(0, Math.Min(expected.Count, actual.Count)).FirstOrDefault(i => expected[i] != actual[i], Math.Min(expected.Count, actual.Count));
            Assert.True(expected.SequenceEqual(actual),
                $"the log differs from an uninterrupted run's at line {first + 1}: expected '{expected.ElementAtOrDefault(first)}', stored '{actual.ElementAtOrDefault(first)}'{context}\n--- uninterrupted ---\n{string.Join('\n', expected)}");
        }

        return run;
    }

    /// <summary>
    /// The log as two runs on two targets share it: lines about interruptions and spare deliveries left out,
    /// each remote step's output (checked against the host separately) as one line, and the values that
    /// differ between targets and moments (names with random parts, numbers, checksums) normalized.
    /// </summary>
    public static List<string> Skeleton(StoredRun run)
    {
        var remote = run.Phases.Where(p => p.StepId is not null).Select(p => p.Index).ToHashSet();
        var result = new List<string>();
        foreach (var line in run.Lines)
        {
            if (line.Text.Contains(": continuing after an interruption", StringComparison.Ordinal) || line.Text.Contains(": its job was delivered again", StringComparison.Ordinal))
            {
                continue;
            }

            var text = remote.Contains(line.PhaseIndex) && !line.Text.StartsWith("── ", StringComparison.Ordinal) ? $"<output of step {line.PhaseIndex}>" : line.Text;
            text = Number().Replace(Hex().Replace(RandomName().Replace(text, "fractal-X"), "H"), "N");
            if (result.Count == 0 || result[^1] != text || !text.StartsWith("<output", StringComparison.Ordinal))
            {
                result.Add(text);
            }
        }

        return result;
    }

    private async Task<string> LastLineAsync() =>
        (await ScalarAsync<string?>("""SELECT "Text" FROM "RunLogChunks" WHERE "RunId" = @run ORDER BY "FirstSequence" DESC LIMIT 1""") ?? "").Split('\n')[^1];

    private async Task<T> ScalarAsync<T>(string sql)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await using var connection = await OpenAsync();
                await using var query = Command(connection, sql);
                var value = await query.ExecuteScalarAsync();
                return value is null or DBNull ? default! : (T)value;
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == 5 && attempt < 50)
            {
                // The dashboard holds the write lock for a moment: ask again.
                await Task.Delay(100);
            }
        }
    }

    private async Task<SqliteConnection> OpenAsync()
    {
        var connection = new SqliteConnection($"Data Source={DatabaseFile};Mode=ReadOnly;Pooling=False;Default Timeout=30");
        await connection.OpenAsync();
        return connection;
    }

    private SqliteCommand Command(SqliteConnection connection, string sql)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("@run", RunId);
        return command;
    }

    public async ValueTask DisposeAsync()
    {
        await Fractal.DisposeAsync();
        // A killed process's ssh helpers live under the data directory: end them too.
        await ProcessRunner.RunAsync("pkill", ["-f", Data], check: false);
        Directory.Delete(Data, recursive: true);
    }

    [GeneratedRegex("fractal[-_][0-9a-f]{8,10}")]
    private static partial Regex RandomName();

    [GeneratedRegex("[0-9a-f]{12,}")]
    private static partial Regex Hex();

    [GeneratedRegex("[0-9]+")]
    private static partial Regex Number();
}

public sealed record StoredLine(int PhaseIndex, string Text);

public sealed record StoredPhase(int Index, string Key, string Title, string State, int Attempt, string? StepId, bool IsRollback);

public sealed class StoredRun
{
    public string State { get; set; } = "";

    public string RemoteKey { get; set; } = "";

    public string? BackupPath { get; set; }

    public long? BackupSize { get; set; }

    public string? BackupSha256 { get; set; }

    public string? KeptEnvFile { get; set; }

    public List<StoredPhase> Phases { get; } = [];

    public List<StoredLine> Lines { get; } = [];

    public List<JsonElement> PhaseEvents { get; } = [];
}
