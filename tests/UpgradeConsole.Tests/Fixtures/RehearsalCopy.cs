using System.Text.RegularExpressions;
using Npgsql;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// What a rehearsal made on the double's host, found by the names only this rehearsal has: the scratch directory
/// its log names, and dumps named after this target's own database. Never by a run-id glob: every test's dashboard numbers
/// its runs from 1 and tests rehearse side by side as one SSH user, so <c>run-1-*-scratch</c> or <c>*rehearsal1-*</c> can be
/// another test's copy, still in use (that made the rehearsal tests fail when run together).
/// </summary>
public static partial class RehearsalCopy
{
    /// <summary>The scratch directory the rehearsal's setup announced in its log, or null when its setup never ran.</summary>
    public static string? ScratchDirectory(string log) => ScratchLine().Match(log) is { Success: true } m ? m.Groups[1].Value : null;

    /// <summary>
    /// How many of the rehearsal's things are still on the host: its scratch directory (when the log names one) and its
    /// dumps in <paramref name="backups"/>. With <paramref name="asUser"/>, looked at as that user (a service user's home).
    /// </summary>
    public static Task<string> LeftAsync(SshServer ssh, FractalTarget fractal, int runId, string log, string backups = "~/upgradeconsole-backups", string? asUser = null) =>
        LeftAsync(ssh, FractalScripts.RehearsalDumpPrefix(new NpgsqlConnectionStringBuilder(fractal.DatabaseConnection).Database!, runId), log, backups, asUser);

    /// <summary>The same for any product: its rehearsal's dumps start with <paramref name="dumpPrefix"/> (<see cref="RehearsalScripts.DumpPrefix"/>).</summary>
    public static async Task<string> LeftAsync(SshServer ssh, string dumpPrefix, string log, string backups, string? asUser = null)
    {
        var dumps = backups + "/" + ShellWords.Quote(dumpPrefix) + "*";
        var paths = ScratchDirectory(log) is { } dir ? ShellWords.QuotePath(dir) + " " + dumps : dumps;
        var command = $"ls -d {paths} 2>/dev/null | wc -l";
        var result = await ssh.RunAsync(asUser is null ? command : $"sudo -n -u {asUser} -H bash -c {ShellWords.Quote(command)}");
        return result.StandardOutput.Trim();
    }

    [GeneratedRegex(@"\[rehearsal\] scratch directory (\S+) with")]
    private static partial Regex ScratchLine();

    /// <summary>How many scratch databases of <paramref name="database"/> the server holds (only this target's: other tests rehearse on the same server meanwhile).</summary>
    public static async Task<long> ScratchDatabasesAsync(PostgresServer postgres, string database)
    {
        await using var conn = new NpgsqlConnection(postgres.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_database WHERE starts_with(datname, @db || '_rehearsal_')", conn);
        cmd.Parameters.AddWithValue("db", database);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}
