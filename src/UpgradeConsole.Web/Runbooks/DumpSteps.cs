using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Runbooks;

/// <summary>Steps that make (or verify) a database dump and report it with the line of <see cref="FractalScripts.DumpAndVerify"/>.</summary>
public static class DumpSteps
{
    /// <summary>
    /// A step that makes (or verifies) a dump and reports it: once it has said the dump's path, size and checksum,
    /// they are recorded on the run; a step that never said them fails, whatever its exit code.
    /// </summary>
    public static RemoteScript Recording(PhaseContext c, string script, IReadOnlyDictionary<string, string>? environment, string step, Func<BackupRecord, PhaseOutcome> done)
    {
        ArgumentNullException.ThrowIfNull(c);
        var run = c.Run;
        BackupRecord? backup = null;
        return new RemoteScript(script, environment)
        {
            OnLine = line => backup ??= FractalScripts.ParseBackup(line),
            Succeeded = async () =>
            {
                if (backup is null)
                {
                    return PhaseOutcome.Failed($"The {step} step did not report the dump's size and checksum.");
                }

                (run.BackupPath, run.BackupSize, run.BackupSha256, run.BackupMilliseconds) = (backup.Path, backup.Size, backup.Sha256, backup.Milliseconds);
                await c.SaveAsync();
                return done(backup);
            },
        };
    }
}
