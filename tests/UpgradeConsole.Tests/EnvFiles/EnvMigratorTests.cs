using UpgradeConsole.Core.EnvFiles;

namespace UpgradeConsole.Tests.EnvFiles;

/// <summary>The 2.16 → 2.17.0 env-file rules (fractal-2.17.md §4.3–4.5), byte-preserving everywhere else.</summary>
public sealed class EnvMigratorTests
{
    // The shape of fractal-containers' slurm-common example (2.15/2.16 era), written for this project.
    private const string SlurmCommon = """
        JWT_SECRET_KEY=somethingverysecret
        FRACTAL_LOGGING_LEVEL=10
        FRACTAL_RUNNER_BACKEND=slurm

        FRACTAL_TASKS_DIR=/data/app/Tasks
        FRACTAL_RUNNER_WORKING_BASE_DIR=/data/app/Artifacts
        FRACTAL_SLURM_CONFIG_FILE=slurm_config.json
        FRACTAL_PIXI_CONFIG_FILE=pixi_config.json

        FRACTAL_SLURM_WORKER_PYTHON=/venv-server/bin/python3

        FRACTAL_TASKS_PYTHON_DEFAULT_VERSION="3.11"
        FRACTAL_TASKS_PYTHON_3_11=/venv311/bin/python

        FRACTAL_VIEWER_AUTHORIZATION_SCHEME=viewer-paths

        JWT_EXPIRE_SECONDS=84600

        POSTGRES_HOST=fractal-db
        POSTGRES_PORT=5433
        POSTGRES_USER=fractal
        POSTGRES_PASSWORD=fractal
        POSTGRES_DB=fractal

        """;

    [Fact]
    public void SlurmFile_IsMigrated_AndOnlyTheNamedLinesChange()
    {
        var result = EnvMigrator.Migrate(SlurmCommon);
        Assert.False(result.Refused);
        Assert.Equal("""
            JWT_SECRET_KEY=somethingverysecret
            FRACTAL_LOGGING_LEVEL=10
            FRACTAL_RUNNER_BACKEND=slurm_sudo




            FRACTAL_DATA_AUTH_SCHEME=viewer-paths

            JWT_EXPIRE_SECONDS=84600

            POSTGRES_HOST=fractal-db
            POSTGRES_PORT=5433
            POSTGRES_USER=fractal
            POSTGRES_PASSWORD=fractal
            POSTGRES_DB=fractal
            FRACTAL_DEFAULT_GROUP_NAME=All

            """, result.NewText);
        Assert.Contains(result.Changes, c => c is { Kind: "set", Key: "FRACTAL_RUNNER_BACKEND" });
        Assert.Contains(result.Changes, c => c is { Kind: "rename", Key: "FRACTAL_VIEWER_AUTHORIZATION_SCHEME", NewKey: "FRACTAL_DATA_AUTH_SCHEME" });
        Assert.Equal(
            ["FRACTAL_PIXI_CONFIG_FILE", "FRACTAL_RUNNER_WORKING_BASE_DIR", "FRACTAL_SLURM_CONFIG_FILE", "FRACTAL_SLURM_WORKER_PYTHON", "FRACTAL_TASKS_DIR", "FRACTAL_TASKS_PYTHON_3_11", "FRACTAL_TASKS_PYTHON_DEFAULT_VERSION"],
            result.Changes.Where(c => c.Kind == "remove").Select(c => c.Key).Order(StringComparer.Ordinal));
        Assert.All(result.Changes, c => Assert.False(string.IsNullOrWhiteSpace(c.Reason)));

        var values = DotEnvFile.Parse(result.NewText!).Values();
        Assert.Equal("slurm_sudo", values["FRACTAL_RUNNER_BACKEND"]);
        Assert.Equal("All", values["FRACTAL_DEFAULT_GROUP_NAME"]);
        Assert.Equal("fractal", values["POSTGRES_PASSWORD"]);
    }

    [Fact]
    public void MigratingAMigratedFile_ChangesNothing()
    {
        var once = EnvMigrator.Migrate(SlurmCommon).NewText!;
        var twice = EnvMigrator.Migrate(once);
        Assert.Empty(twice.Changes);
        Assert.Equal(once, twice.NewText);
        Assert.False(twice.Changed);
    }

    [Theory]
    [InlineData("FRACTAL_RUNNER_BACKEND=local\nJWT_SECRET_KEY=x\n", "only for SLURM instances")]
    [InlineData("JWT_SECRET_KEY=x\n", "only for SLURM instances")]
    [InlineData("FRACTAL_RUNNER_BACKEND=kubernetes\n", "not a value 2.16 accepts")]
    [InlineData("FRACTAL_RUNNER_BACKEND=slurm\nOAUTH_GITHUB_CLIENT_ID=a\nOAUTH_GITHUB_CLIENT_SECRET=b\nOAUTH_MYIDP_CLIENT_ID=c\nOAUTH_MYIDP_CLIENT_SECRET=d\n", "single OAuth client")]
    public void Refusal_GivesTheReason_AndNoNewText(string text, string reason)
    {
        var result = EnvMigrator.Migrate(text);
        Assert.True(result.Refused);
        Assert.Null(result.NewText);
        Assert.Contains(result.Refusals, r => r.Contains(reason, StringComparison.Ordinal));
    }

    [Fact]
    public void Bytes_NotChanged_AreKept_CrlfExportQuotesCommentsAndNoFinalNewline()
    {
        var text = "# site config\r\nexport FRACTAL_RUNNER_BACKEND='slurm' # keep me\r\n  JWT_SECRET_KEY=\"a b\"\r\n\r\nFRACTAL_TASKS_DIR=/t\r\nPOSTGRES_DB=fractal";
        var result = EnvMigrator.Migrate(text);
        Assert.Equal("# site config\r\nexport FRACTAL_RUNNER_BACKEND='slurm_sudo' # keep me\r\n  JWT_SECRET_KEY=\"a b\"\r\n\r\nPOSTGRES_DB=fractal\r\nFRACTAL_DEFAULT_GROUP_NAME=All\r\n", result.NewText);
    }

    [Fact]
    public void OneOAuthClient_BecomesThe217SingleClient()
    {
        var text = "FRACTAL_RUNNER_BACKEND=slurm_ssh\nOAUTH_MYIDP_CLIENT_ID=id123\nOAUTH_MYIDP_CLIENT_SECRET=s3cr3t\nOAUTH_MYIDP_OIDC_CONFIGURATION_ENDPOINT=https://idp/.well-known\nOAUTH_MYIDP_REDIRECT_URL=https://fractal/auth/myidp/callback/\nFRACTAL_DEFAULT_GROUP_NAME=All\n";
        var result = EnvMigrator.Migrate(text);
        Assert.Equal("FRACTAL_RUNNER_BACKEND=slurm_ssh\nOAUTH_CLIENT_NAME=myidp\nOAUTH_CLIENT_ID=id123\nOAUTH_CLIENT_SECRET=s3cr3t\nOAUTH_OIDC_CONFIG_ENDPOINT=https://idp/.well-known\nOAUTH_REDIRECT_URL=https://fractal/auth/myidp/callback/\nFRACTAL_DEFAULT_GROUP_NAME=All\n", result.NewText);
        Assert.Equal(result.NewText, EnvMigrator.Migrate(result.NewText!).NewText);
    }

    [Fact]
    public void SeveralOAuthClients_WithAChoice_KeepThatOneAndDropTheOthers()
    {
        var text = "FRACTAL_RUNNER_BACKEND=slurm\nOAUTH_GITHUB_CLIENT_ID=a\nOAUTH_GITHUB_CLIENT_SECRET=b\nOAUTH_MYIDP_CLIENT_ID=c\nOAUTH_MYIDP_CLIENT_SECRET=d\nOAUTH_MYIDP_OIDC_CONFIGURATION_ENDPOINT=e\n";
        var result = EnvMigrator.Migrate(text, keepOAuthClient: "github");
        Assert.False(result.Refused);
        var values = DotEnvFile.Parse(result.NewText!).Values();
        Assert.Equal("github", values["OAUTH_CLIENT_NAME"]);
        Assert.Equal("a", values["OAUTH_CLIENT_ID"]);
        Assert.DoesNotContain(values.Keys, k => k.StartsWith("OAUTH_MYIDP", StringComparison.Ordinal));
        Assert.Contains(result.Changes, c => c.Kind == "remove" && c.Reason.Contains("'GITHUB' was chosen", StringComparison.Ordinal));
    }

    [Fact]
    public void EmailPasswordKey_IsDropped_WithAWarningAboutThePlainPassword()
    {
        var result = EnvMigrator.Migrate("FRACTAL_RUNNER_BACKEND=slurm\nFRACTAL_EMAIL_PASSWORD=gAAAAABencrypted\nFRACTAL_EMAIL_PASSWORD_KEY=k\n");
        Assert.Contains(result.Changes, c => c is { Kind: "remove", Key: "FRACTAL_EMAIL_PASSWORD_KEY" });
        Assert.Contains(result.Warnings, w => w.Contains("plain text", StringComparison.Ordinal));
    }

    [Fact]
    public void ViewerBaseFolder_IsRenamed_AndAnExisting217NameWins()
    {
        var result = EnvMigrator.Migrate("FRACTAL_RUNNER_BACKEND=slurm\nFRACTAL_VIEWER_BASE_FOLDER=/a\nFRACTAL_DATA_AUTH_SCHEME=none\nFRACTAL_VIEWER_AUTHORIZATION_SCHEME=users-folders\n");
        var values = DotEnvFile.Parse(result.NewText!).Values();
        Assert.Equal("/a", values["FRACTAL_DATA_BASE_FOLDER"]);
        Assert.Equal("none", values["FRACTAL_DATA_AUTH_SCHEME"]);
        Assert.False(values.ContainsKey("FRACTAL_VIEWER_AUTHORIZATION_SCHEME"));
    }

    [Theory]
    [InlineData("FRACTAL_RUNNER_BACKEND=slurm\n", "/venv/bin/python", "FRACTAL_RUNNER_BACKEND=slurm\nFRACTAL_SLURM_WORKER_PYTHON=/venv/bin/python\n")]
    [InlineData("FRACTAL_RUNNER_BACKEND=slurm", "/venv/bin/python", "FRACTAL_RUNNER_BACKEND=slurm\nFRACTAL_SLURM_WORKER_PYTHON=/venv/bin/python\n")]
    [InlineData("A=1\r\n", "/p y/python", "A=1\r\nFRACTAL_SLURM_WORKER_PYTHON='/p y/python'\r\n")]
    [InlineData("FRACTAL_SLURM_WORKER_PYTHON=/x\n", "/venv/bin/python", "FRACTAL_SLURM_WORKER_PYTHON=/x\n")]
    public void OldCopy_AddsTheWorkerPythonOnlyWhenMissing(string text, string python, string expected) =>
        Assert.Equal(expected, EnvMigrator.OldCopy(text, python));

    [Fact]
    public void Diff_ShowsChangedLines_WithSecretsMasked()
    {
        var diff = EnvMigrator.Diff("A=1\nPOSTGRES_PASSWORD=hunter2\nFRACTAL_RUNNER_BACKEND=slurm\n", "A=1\nPOSTGRES_PASSWORD=hunter3\nFRACTAL_RUNNER_BACKEND=slurm_sudo\n");
        Assert.Contains("- FRACTAL_RUNNER_BACKEND=slurm\n", diff, StringComparison.Ordinal);
        Assert.Contains("+ FRACTAL_RUNNER_BACKEND=slurm_sudo\n", diff, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter", diff, StringComparison.Ordinal);
    }
}
