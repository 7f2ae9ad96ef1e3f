using System.CommandLine;
using System.Text;
using UpgradeConsole.Core.EnvFiles;

namespace UpgradeConsole.Web.Cli;

/// <summary><c>env migrate --from 2.16 --to 2.17.0 FILE [--write]</c>: the env-file engine from a shell.</summary>
internal static class EnvCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var from = new Option<string>("--from") { Description = "The version the file is for (2.16).", Required = true };
        var to = new Option<string>("--to") { Description = "The version to migrate it to (2.17.0).", Required = true };
        var write = new Option<bool>("--write") { Description = "Write the migrated file (atomically; the previous one is kept as FILE.pre-2.17.0). Without it, only print." };
        var oauth = new Option<string?>("--oauth-client") { Description = "With several 2.16 OAuth clients, the one to keep (2.17 has one)." };
        var file = new Argument<FileInfo>("FILE") { Description = "The .fractal_server.env to migrate." };
        var migrate = new Command("migrate", "Migrate a .fractal_server.env: prints the diff and the reason for every change.") { from, to, write, oauth, file };
        migrate.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(from) != "2.16" || parse.GetValue(to) != "2.17.0")
            {
                await error.WriteLineAsync("Only --from 2.16 --to 2.17.0 is known.");
                return 2;
            }

            var path = parse.GetValue(file)!;
            if (!path.Exists)
            {
                await error.WriteLineAsync($"{path.FullName} does not exist.");
                return 2;
            }

            var bytes = await File.ReadAllBytesAsync(path.FullName, ct);
            string text;
            try
            {
                text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                await error.WriteLineAsync($"{path.Name} is not UTF-8 text; nothing was changed.");
                return 1;
            }

            var result = EnvMigrator.Migrate(text, parse.GetValue(oauth));
            foreach (var warning in result.Warnings)
            {
                await error.WriteLineAsync("warning: " + warning);
            }

            if (result.Refused)
            {
                foreach (var refusal in result.Refusals)
                {
                    await error.WriteLineAsync("refused: " + refusal);
                }

                await error.WriteLineAsync($"{path.Name} was not changed.");
                return 1;
            }

            if (!result.Changed)
            {
                await output.WriteLineAsync($"{path.Name} is already in the 2.17.0 shape: nothing to change.");
                return 0;
            }

            await output.WriteAsync(EnvMigrator.Diff(text, result.NewText!));
            await output.WriteLineAsync();
            foreach (var change in result.Changes)
            {
                await output.WriteLineAsync($"{change.Kind,-7} {change.Key}{(change.NewKey is null ? "" : " → " + change.NewKey)}: {change.Reason}");
            }

            if (parse.GetValue(write))
            {
                var kept = path.FullName + ".pre-2.17.0";
                if (File.Exists(kept))
                {
                    kept += "." + TimeProvider.System.GetUtcNow().ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture);
                }

                File.Copy(path.FullName, kept);
                var temp = Path.Combine(path.DirectoryName!, "." + path.Name + ".tmp");
                await File.WriteAllBytesAsync(temp, new UTF8Encoding(false).GetBytes(result.NewText!), ct);
                File.SetUnixFileMode(temp, File.GetUnixFileMode(path.FullName));
                File.Move(temp, path.FullName, overwrite: true);
                await output.WriteLineAsync($"Wrote {path.Name}; the previous version is {Path.GetFileName(kept)}.");
            }
            else
            {
                await output.WriteLineAsync("Nothing written (use --write).");
            }

            return 0;
        });
        return new Command("env", "Work with .fractal_server.env files.") { migrate };
    }
}
