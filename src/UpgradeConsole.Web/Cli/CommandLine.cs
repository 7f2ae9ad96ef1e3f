using System.CommandLine;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Web.Cli;

/// <summary>
/// Verbs of the dashboard's executable. Without a verb it serves the dashboard; with one it does the
/// job against the same configuration (appsettings, environment, data directory) and exits.
/// </summary>
public static class CommandLine
{
    private static readonly HashSet<string> Verbs = ["migrate", "users", "tokens", "targets", "env", "audit", "runs", "preflight", "fractal-users", "upgrade-path", "--help", "-h", "-?", "help", "--version"];

    /// <summary>
    /// A verb, or a word that is not one (answered "unrecognized", exit 2): the dashboard is served only
    /// without a verb, with at most server options such as <c>--urls</c>. A misspelled verb must not start a
    /// server and create a data directory.
    /// </summary>
    public static bool IsCommand(string[] args) => args.Length > 0 && (Verbs.Contains(args[0]) || !args[0].StartsWith('-'));

    /// <summary>Exit code of a verb that reads the dashboard's database when there is none where the configuration points.</summary>
    public const int NoDatabase = 3;

    /// <summary>
    /// For verbs that only read: refuses, in one line and without creating anything, a SQLite database
    /// that does not exist where the configuration points (a wrong data directory), and any database
    /// without the dashboard's schema. Null when the database is there.
    /// </summary>
    internal static async Task<string?> MissingDatabaseAsync(WebApplication? app, CancellationToken ct)
    {
        if (app is null)
        {
            var configuration = WebApplication.CreateBuilder([]).Configuration;
            if (!string.Equals(configuration["Database:Provider"] ?? "Sqlite", "Sqlite", StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }

            var directory = Path.GetFullPath(configuration[Hosting.DataDirectory.ConfigurationKey] is { Length: > 0 } d ? d : "data");
            var configured = configuration.GetConnectionString(DatabaseOptions.ConnectionStringName);
            var file = string.IsNullOrWhiteSpace(configured)
                ? Path.Combine(directory, "upgradeconsole.db")
                : Path.GetFullPath(new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(configured).DataSource);
            return File.Exists(file) ? null : $"No dashboard database at {file}: check {Hosting.DataDirectory.ConfigurationKey} (or the connection string); nothing was created.";
        }

        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        return (await db.Database.GetAppliedMigrationsAsync(ct)).Any()
            ? null
            : "The configured database has no dashboard schema (an empty database?): check the configuration, or run `migrate` first.";
    }

    /// <summary>
    /// The application built for a verb: framework log lines go to standard error and only from warnings
    /// up, so standard output carries the verb's answer alone (a script captures a token with <c>$(…)</c>).
    /// </summary>
    internal static Task<int> WithAppAsync(TextWriter error, Func<WebApplication, Task<int>> use) =>
        Program.WithAppAsync([], error, use, builder =>
        {
            // The web host's own warnings (no static files beside a CLI, …) say nothing about the verb.
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Default"] = "Warning",
                ["Logging:LogLevel:Microsoft.AspNetCore"] = "Error",
            });
            builder.Logging.ClearProviders();
            builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        });

    /// <summary>
    /// <see cref="WithAppAsync"/> for a verb that needs the dashboard's database to be there already:
    /// a missing or empty one is refused in one line with <see cref="NoDatabase"/>, and nothing is created.
    /// </summary>
    internal static async Task<int> WithExistingDatabaseAsync(TextWriter error, Func<WebApplication, Task<int>> use, CancellationToken ct)
    {
        if (await MissingDatabaseAsync(null, ct) is { } missing)
        {
            await error.WriteLineAsync(missing);
            return NoDatabase;
        }

        return await WithAppAsync(error, async app =>
        {
            if (await MissingDatabaseAsync(app, ct) is { } empty)
            {
                await error.WriteLineAsync(empty);
                return NoDatabase;
            }

            return await use(app);
        });
    }

    /// <summary>Who a server-side verb acts as in the audit history: the operating-system account that ran it.</summary>
    internal static string CliActor => $"cli ({Environment.UserName})";

    public static async Task<int> RunAsync(string[] args, TextReader? input = null, TextWriter? output = null, TextWriter? error = null, Func<string, string?>? environment = null)
    {
        input ??= Console.In;
        output ??= Console.Out;
        error ??= Console.Error;
        if (args.Length > 0 && !args[0].StartsWith('-') && !Verbs.Contains(args[0]))
        {
            // Before parsing: "unknown-verb --help" would otherwise print the root's help and exit 0.
            await error.WriteLineAsync($"Unrecognized command or argument '{args[0]}'. Commands: {string.Join(", ", Verbs.Where(v => !v.StartsWith('-') && v != "help"))}.");
            await error.WriteLineAsync("See: UpgradeConsole.Web --help");
            return 2;
        }

        var root = Build(input, output, error, environment ?? Environment.GetEnvironmentVariable);
        var parsed = root.Parse(args.Length > 0 && args[0] == "help" ? ["--help", .. args[1..]] : args);
        if (parsed.Errors.Count > 0)
        {
            // Usage errors exit 2 (as refused calls do): 1 is kept for "the thing ran and did not succeed".
            // One line, so a script's log shows the whole reason.
            var path = new List<string>();
            for (System.CommandLine.Parsing.SymbolResult? r = parsed.CommandResult; r is System.CommandLine.Parsing.CommandResult c; r = c.Parent)
            {
                path.Insert(0, c.Command.Name);
            }

            // Some of the parser's own messages span lines (the choices of an option, one a line): joined into one.
            await error.WriteLineAsync($"{string.Join(" ", parsed.Errors.Select(e => OneLine(e.Message).TrimEnd('.') + "."))} See: {string.Join(' ', path)} --help");
            return 2;
        }

        return await parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
    }

    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static RootCommand Build(TextReader input, TextWriter output, TextWriter error, Func<string, string?> environment)
    {
        var root = new RootCommand(
            "UpgradeConsole: plan, run and audit upgrades of self-hosted research servers over SSH.\n" +
            "Run without a command to serve the dashboard (http://127.0.0.1:5080 by default).");

        var migrate = new Command("migrate", "Apply the database migrations and exit.");
        migrate.SetAction((_, ct) => WithAppAsync(error, async app =>
        {
            await app.Services.MigrateDatabaseAsync(ct);
            var db = app.Services.CreateScope().ServiceProvider.GetRequiredService<AppDbContext>();
            var applied = await db.Database.GetAppliedMigrationsAsync(ct);
            await output.WriteLineAsync($"Database is up to date ({db.Database.ProviderName}, {applied.Count()} migrations applied).");
            return 0;
        }));
        root.Subcommands.Add(migrate);

        var users = new Command("users", "Manage dashboard accounts.");
        var email = new Option<string>("--email") { Description = "The new user's e-mail address (their sign-in name).", Required = true };
        var role = new Option<string>("--role") { Description = "Admin, Operator or Viewer.", Required = true };
        role.Validators.Add(r =>
        {
            if (Roles.Normalize(r.GetValueOrDefault<string>()) is null)
            {
                r.AddError($"Unknown role '{r.GetValueOrDefault<string>()}'. Use one of: {string.Join(", ", Roles.All)}.");
            }
        });
        var passwordStdin = new Option<bool>("--password-stdin") { Description = "Read the password from the first line of standard input instead of generating one." };
        var create = new Command("create", "Create a user. Prints a generated password unless --password-stdin is given.")
        {
            email, role, passwordStdin,
        };
        create.SetAction(async (parse, ct) =>
        {
            string? password = null;
            if (parse.GetValue(passwordStdin))
            {
                password = await input.ReadLineAsync(ct);
                if (string.IsNullOrEmpty(password))
                {
                    await error.WriteLineAsync("No password on standard input.");
                    return 1;
                }
            }

            return await WithAppAsync(error, async app =>
            {
                await app.Services.MigrateDatabaseAsync(ct);
                await using var scope = app.Services.CreateAsyncScope();
                var accounts = scope.ServiceProvider.GetRequiredService<UserAdministration>();
                var result = await accounts.CreateAsync(parse.GetValue(email)!, parse.GetValue(role)!, password);
                if (!result.Succeeded)
                {
                    foreach (var e in result.Errors)
                    {
                        await error.WriteLineAsync(e);
                    }

                    return 1;
                }

                // As on the users page (user.create), made by the server's shell; the password never is in it.
                await scope.ServiceProvider.GetRequiredService<Audit.AuditLog>().RecordAsync(CliActor, "user.create", subject: parse.GetValue(email)!.Trim(),
                    details: new { role = Roles.Normalize(parse.GetValue(role)), passwordGenerated = result.GeneratedPassword is not null }, ct: ct);
                await output.WriteLineAsync($"Created {parse.GetValue(email)} with role {Roles.Normalize(parse.GetValue(role))}.");
                if (result.GeneratedPassword is not null)
                {
                    await output.WriteLineAsync($"Password: {result.GeneratedPassword}");
                }

                return 0;
            });
        });
        users.Subcommands.Add(create);
        root.Subcommands.Add(users);
        root.Subcommands.Add(TokensCommand.Build(output, error));
        root.Subcommands.Add(EnvCommand.Build(output, error));
        root.Subcommands.Add(UpgradePathCommand.Build(output, error));

        var audit = new Command("audit", "Work with the audit history.");
        var verify = new Command("verify", "Walk the audit chain. Exits 0 when it holds, 2 when an event was changed, removed or inserted (it names the first), 3 when there is no dashboard database where the configuration points.");
        verify.SetAction((_, ct) => WithExistingDatabaseAsync(error, async app =>
        {
            var result = await app.Services.GetRequiredService<Audit.AuditLog>().VerifyFullAsync(ct);
            await (result.Holds ? output : error).WriteLineAsync(result.ToString());
            return result.Holds ? 0 : 2;
        }, ct));
        audit.Subcommands.Add(verify);
        root.Subcommands.Add(audit);
        root.Subcommands.Add(TargetsCommand.Build(output, error, environment));
        root.Subcommands.Add(FractalUsersCommand.Build(output, error, environment));
        foreach (var command in RunsCommand.Build(output, error, environment))
        {
            root.Subcommands.Add(command);
        }

        return root;
    }
}
