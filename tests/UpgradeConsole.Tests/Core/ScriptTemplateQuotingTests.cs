using System.Text;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Core.Runbooks;

namespace UpgradeConsole.Tests.Core;

/// <summary>
/// Every script template, fed hostile text in every value it takes (except the service commands, which
/// an Admin writes as shell on purpose): the text reaches the script only inside single quotes, where
/// nothing is special to the shell. The quoting itself is proven against a real shell in ShellWordsTests.
/// </summary>
public sealed class ScriptTemplateQuotingTests
{
    private const string Marker = "uc-pwned";

    public static TheoryData<string> Payloads =>
    [
        $"x$(touch {Marker})",
        $"x`touch {Marker}`",
        $"a'$(touch {Marker})'b",
        $"a\"; touch {Marker}; \"",
        $"v\ntouch {Marker}\n",
        $"${{IFS}}{Marker}",
        $"/srv/x y/$(touch {Marker})",
    ];

    [Theory]
    [MemberData(nameof(Payloads))]
    public void EveryFractalTemplate_CarriesHostileValues_OnlyInsideSingleQuotes(string payload)
    {
        var host = new FractalHostSettings(
            WorkingDirectory: "/srv/" + payload,
            Python: "/opt/" + payload + "/bin/python",
            ServerUrl: "http://" + payload,
            StopCommand: "true",
            StartCommand: "true",
            StatusCommand: "true",
            BackupDirectory: "/backup/" + payload,
            PipOptions: ["--find-links", payload]);
        var scripts = new Dictionary<string, string>
        {
            ["backup"] = FractalScripts.Backup(host, payload + ".dump"),
            ["verify-files"] = FractalScripts.VerifyFiles(host, [payload, "slurm_config.json"]),
            ["pip-install"] = FractalScripts.PipInstall(host, payload),
            ["start"] = FractalScripts.Start(host, payload, TimeSpan.FromMinutes(1)),
            ["stop"] = FractalScripts.Stop(host),
            ["set-db"] = FractalScripts.SetDb(host),
            ["update-db-data"] = FractalScripts.UpdateDbData(host),
            ["restore"] = FractalScripts.RestoreDatabase(host, "/backup/" + payload, payload),
        };
        foreach (var (name, script) in scripts)
        {
            Assert.True(!Exposed(script).Contains(Marker, StringComparison.Ordinal), $"{name}: '{payload}' reaches the shell unquoted:\n{script}");
        }
    }

    [Theory]
    [MemberData(nameof(Payloads))]
    public void EveryEngineTemplate_CarriesHostileValues_OnlyInsideSingleQuotes(string payload)
    {
        var location = new StepLocation("/runs/" + payload, "run-1", "step-1");
        var step = new RemoteStep
        {
            Location = location,
            Script = "echo " + payload,
            Environment = new Dictionary<string, string> { ["VALUE"] = payload },
            WorkingDirectory = "/work/" + payload,
            RunAsUser = "svc", // user names are validated where they enter (a hostile one is refused)
            Timeout = TimeSpan.FromMinutes(1),
        };
        var scripts = new Dictionary<string, string>
        {
            ["start"] = StepScripts.Start(step),
            ["start-follow"] = StepScripts.StartAndFollow(step),
            ["status"] = StepScripts.Status(location),
            ["follow"] = StepScripts.Follow(location, 42),
            ["cancel"] = StepScripts.Cancel(location, TimeSpan.FromSeconds(5)),
        };
        foreach (var (name, script) in scripts)
        {
            Assert.True(!Exposed(script).Contains(Marker, StringComparison.Ordinal), $"{name}: '{payload}' reaches the shell unquoted:\n{script}");
        }
    }

    /// <summary>
    /// What a POSIX shell would not read literally: the script without its single-quoted regions (a
    /// small lexer: single quotes are literal only outside double quotes; backslash escapes the next
    /// character outside single quotes; a heredoc body would count as exposed, which is the safe side).
    /// </summary>
    private static string Exposed(string script)
    {
        var exposed = new StringBuilder();
        var single = false;
        var dbl = false;
        for (var i = 0; i < script.Length; i++)
        {
            var c = script[i];
            if (single)
            {
                single = c != '\'';
                continue;
            }

            if (c == '\\' && i + 1 < script.Length)
            {
                exposed.Append(c).Append(script[++i]);
                continue;
            }

            if (c == '\'' && !dbl)
            {
                single = true;
                continue;
            }

            if (c == '"')
            {
                dbl = !dbl;
            }

            exposed.Append(c);
        }

        return exposed.ToString();
    }
}

/// <summary>Versions enter as PEP 440 (normalized) or not at all.</summary>
public sealed class Pep440Tests
{
    [Theory]
    [InlineData("2.17.0")]
    [InlineData("2.16.6")]
    [InlineData("2.17.0a1")]
    [InlineData("2.17.0rc2")]
    [InlineData("1!2.0.post1.dev3")]
    [InlineData("2.17.0+local.7")]
    [InlineData("24.03.10")]
    public void IsValid_NormalizedVersions_AreAccepted(string version) => Assert.True(Pep440.IsValid(version));

    [Theory]
    [InlineData("")]
    [InlineData("2.17.0;id")]
    [InlineData("2.17.0 ")]
    [InlineData("$(id)")]
    [InlineData("2.17.0`id`")]
    [InlineData("2.17.0\n")]
    [InlineData("v2.17.0")]
    [InlineData("2.17.0-rc1")]
    [InlineData("2.17.0'")]
    [InlineData(null)]
    public void IsValid_AnythingElse_IsRefused(string? version) => Assert.False(Pep440.IsValid(version));
}
