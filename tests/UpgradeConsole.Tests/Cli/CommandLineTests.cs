using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Cli;

/// <summary>The dashboard's executable as an admin's CLI: run as a real process against a real database.</summary>
public sealed class CommandLineTests(PostgresServer postgres) : IAsyncLifetime
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("uc-cli-").FullName;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    [Fact]
    public async Task Help_ListsTheVerbs()
    {
        var result = await RunAsync(["--help"]);
        Assert.Contains("migrate", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("users", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("serve the dashboard", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StartingWithADataDirectoryTooLong_EndsWithOnePlainLineAndExitCode1()
    {
        var tooLong = Path.Combine(_dataDirectory, new string('d', 70));
        var result = await RunAsync(["--urls", "http://127.0.0.1:0"], new() { ["UpgradeConsole__DataDirectory"] = tooLong }, check: false);
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("UpgradeConsole cannot start: UpgradeConsole:DataDirectory is " + tooLong, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", result.StandardError, StringComparison.Ordinal);
        Assert.False(Directory.Exists(tooLong));
    }

    [Fact]
    public async Task AVerbWithADataDirectoryTooLong_EndsTheSameWay()
    {
        var tooLong = Path.Combine(_dataDirectory, new string('d', 70));
        var result = await RunAsync(["migrate"], new() { ["UpgradeConsole__DataDirectory"] = tooLong }, check: false);
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("UpgradeConsole cannot start: UpgradeConsole:DataDirectory is " + tooLong, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("upgrade-paths")]
    [InlineData("audti")]
    [InlineData("serve")]
    public async Task AnUnknownVerb_IsRefusedWithExitCode2_AndStartsNothing(string verb)
    {
        var elsewhere = Path.Combine(_dataDirectory, "not-created");
        var result = await RunAsync([verb, "--help"], new() { ["UpgradeConsole__DataDirectory"] = elsewhere }, check: false);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"Unrecognized command or argument '{verb}'", result.StandardError, StringComparison.Ordinal);
        Assert.False(Directory.Exists(elsewhere));
    }

    [Fact]
    public async Task AuditVerify_AgainstAWrongDataDirectory_SaysSoInOneLine_AndCreatesNothing()
    {
        var wrong = Path.Combine(_dataDirectory, "typo");
        var result = await RunAsync(["audit", "verify"], new() { ["UpgradeConsole__DataDirectory"] = wrong }, check: false);
        Assert.Equal(3, result.ExitCode);
        Assert.Equal($"No dashboard database at {Path.Combine(wrong, "upgradeconsole.db")}: check UpgradeConsole:DataDirectory (or the connection string); nothing was created.", result.StandardError.Trim());
        Assert.Equal("", result.StandardOutput.Trim());
        Assert.False(Directory.Exists(wrong));
    }

    [Fact]
    public async Task AuditVerify_OnAnEmptyDatabaseFile_IsRefusedTheSameWay()
    {
        await File.WriteAllBytesAsync(Path.Combine(_dataDirectory, "upgradeconsole.db"), [], TestContext.Current.CancellationToken);
        var result = await RunAsync(["audit", "verify"], check: false);
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("has no dashboard schema", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_OnEmptyDataDirectory_CreatesTheDatabase()
    {
        var result = await RunAsync(["migrate"]);
        Assert.Contains("Database is up to date", result.StandardOutput, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(_dataDirectory, "upgradeconsole.db")));
    }

    [Fact]
    public async Task Migrate_OnPostgres_CreatesTheSchema()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        var result = await RunAsync(["migrate"], new()
        {
            ["Database__Provider"] = "PostgreSQL",
            ["ConnectionStrings__UpgradeConsole"] = connectionString,
            ["UpgradeConsole__KeyEncryptionKey"] = UpgradeConsoleApplicationFactory.TestKeyEncryptionKey,
        });
        Assert.Contains("Npgsql", result.StandardOutput, StringComparison.Ordinal);
        await using var conn = new Npgsql.NpgsqlConnection(connectionString);
        await conn.OpenAsync(TestContext.Current.CancellationToken);
        await using var cmd = new Npgsql.NpgsqlCommand("SELECT count(*) FROM \"AspNetRoles\"", conn);
        Assert.Equal(3L, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task UsersCreate_PrintsAGeneratedPassword_ThatSignsIn()
    {
        var result = await RunAsync(["users", "create", "--email", "cli@example.org", "--role", "Operator"]);
        var password = result.StandardOutput.Split('\n').Single(l => l.StartsWith("Password: ", StringComparison.Ordinal))["Password: ".Length..].Trim();

        await using var app = new UpgradeConsoleApplicationFactory(dataDirectory: _dataDirectory);
        var client = await app.LoginAsAsync("cli@example.org", password);
        var home = await (await client.GetAsync("/")).ExpectOkAsync();
        Assert.Contains("Operator", home, StringComparison.Ordinal);
        // A dashboard that already has a user prints no setup link.
        Assert.DoesNotContain(app.Logs.Lines, l => l.Contains("/setup?token=", StringComparison.Ordinal));

        // Audited as the users page audits it (user.create), made by the server's shell; the password is not in it.
        var created = Assert.Single(await app.AuditEventsAsync(), e => e.Action == "user.create");
        Assert.Equal("cli@example.org", created.Subject);
        Assert.StartsWith("cli (", created.Actor, StringComparison.Ordinal);
        Assert.Contains("Operator", created.Details, StringComparison.Ordinal);
        Assert.DoesNotContain(password, created.Details, StringComparison.Ordinal);
        var verified = await RunAsync(["audit", "verify"]);
        Assert.Equal(0, verified.ExitCode);
    }

    [Fact]
    public async Task UsersCreate_WithPasswordOnStdin_UsesIt()
    {
        var result = await RunAsync(["users", "create", "--email", "stdin@example.org", "--role", "admin", "--password-stdin"],
            input: "a password from a pipe\n");
        Assert.DoesNotContain("Password:", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("with role Admin", result.StandardOutput, StringComparison.Ordinal);

        await using var app = new UpgradeConsoleApplicationFactory(dataDirectory: _dataDirectory);
        await app.LoginAsAsync("stdin@example.org", "a password from a pipe");
    }

    [Theory]
    [InlineData("--role", "Superuser", "Superuser")]
    [InlineData("--email", "not-an-email", "not an e-mail address")]
    public async Task UsersCreate_WithBadInput_FailsWithAClearMessage(string option, string value, string expected)
    {
        string[] args = option == "--role"
            ? ["users", "create", "--email", "x@example.org", "--role", value]
            : ["users", "create", "--email", value, "--role", "Viewer"];
        var result = await RunAsync(args, check: false);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(expected, result.Combined, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UsersCreate_WithTooShortStdinPassword_FailsAndCreatesNobody()
    {
        var result = await RunAsync(["users", "create", "--email", "short@example.org", "--role", "Viewer", "--password-stdin"], input: "short\n", check: false);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("at least 12 characters", result.StandardError, StringComparison.Ordinal);

        var again = await RunAsync(["users", "create", "--email", "short@example.org", "--role", "Viewer"]);
        Assert.Contains("Created short@example.org", again.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EnvMigrate_PrintsDiffAndReasons_AndWritesOnlyWithWrite()
    {
        var file = Path.Combine(_dataDirectory, ".fractal_server.env");
        const string original = "JWT_SECRET_KEY=s3cret\nFRACTAL_RUNNER_BACKEND=slurm\nFRACTAL_TASKS_DIR=/t\nPOSTGRES_DB=fractal\n";
        await File.WriteAllTextAsync(file, original, TestContext.Current.CancellationToken);

        var dry = await RunAsync(["env", "migrate", "--from", "2.16", "--to", "2.17.0", file]);
        Assert.Contains("- FRACTAL_RUNNER_BACKEND=slurm\n", dry.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("+ FRACTAL_RUNNER_BACKEND=slurm_sudo\n", dry.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("remove  FRACTAL_TASKS_DIR: becomes resource.tasks_local_dir", dry.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret", dry.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(original, await File.ReadAllTextAsync(file, TestContext.Current.CancellationToken));

        await RunAsync(["env", "migrate", "--from", "2.16", "--to", "2.17.0", file, "--write"]);
        Assert.Equal("JWT_SECRET_KEY=s3cret\nFRACTAL_RUNNER_BACKEND=slurm_sudo\nPOSTGRES_DB=fractal\nFRACTAL_DEFAULT_GROUP_NAME=All\n", await File.ReadAllTextAsync(file, TestContext.Current.CancellationToken));
        Assert.Equal(original, await File.ReadAllTextAsync(file + ".pre-2.17.0", TestContext.Current.CancellationToken));

        var again = await RunAsync(["env", "migrate", "--from", "2.16", "--to", "2.17.0", file, "--write"]);
        Assert.Contains("nothing to change", again.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EnvMigrate_Refused_LeavesTheFileByteIdentical()
    {
        var file = Path.Combine(_dataDirectory, "local.env");
        var bytes = System.Text.Encoding.UTF8.GetBytes("# local runner\r\nFRACTAL_RUNNER_BACKEND=local\r\nJWT_SECRET_KEY=x");
        await File.WriteAllBytesAsync(file, bytes, TestContext.Current.CancellationToken);
        var before = File.GetLastWriteTimeUtc(file);

        var result = await RunAsync(["env", "migrate", "--from", "2.16", "--to", "2.17.0", file, "--write"], check: false);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("only for SLURM instances", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(file, TestContext.Current.CancellationToken));
        Assert.Equal(before, File.GetLastWriteTimeUtc(file));
        Assert.False(File.Exists(file + ".pre-2.17.0"));
    }

    private Task<ProcessRunner.Result> RunAsync(string[] args, Dictionary<string, string?>? environment = null, string? input = null, bool check = true)
    {
        var env = new Dictionary<string, string?>
        {
            ["UpgradeConsole__DataDirectory"] = _dataDirectory,
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
        };
        foreach (var (k, v) in environment ?? [])
        {
            env[k] = v;
        }

        return ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            standardInput: input, environment: env, workingDirectory: AppContext.BaseDirectory, check: check);
    }

    public ValueTask DisposeAsync()
    {
        Directory.Delete(_dataDirectory, recursive: true);
        return ValueTask.CompletedTask;
    }
}
