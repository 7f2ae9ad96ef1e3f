using System.Text.Json;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Cli;

/// <summary>
/// <c>upgrade-path check|plan</c> run as a real process, as a shell script would: exit 0 allowed, 1 refused
/// with the first forbidden hop and its rule in one line, 2 for a wrong argument; no dashboard database needed.
/// </summary>
public sealed class UpgradePathFromTheShellTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("uc-upath-").FullName;

    private string Releases => Path.Combine(_directory, "releases.txt");

    public async ValueTask InitializeAsync()
    {
        // Shuffled, with pip's normalised spelling, a pre-release and a comment, as a pasted list would be.
        var lines = new List<string> { "# backend.ai-manager releases", "24.9.0rc1" };
        lines.AddRange(Enumerable.Range(0, 11).Select(p => $"23.3.{p}"));
        lines.AddRange(Enumerable.Range(0, 11).Select(p => $"23.09.{p}").Reverse());
        lines.AddRange(Enumerable.Range(0, 6).Select(p => $"24.03.{p}"));
        lines.Add("23.03.11");
        await File.WriteAllLinesAsync(Releases, lines, TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Check_TheGuidesAllowedChain_Exits0()
    {
        var result = await RunAsync("upgrade-path", "check", "--product", "backend.ai", "--releases", Releases, "23.09.9", "23.09.10", "24.03.0");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("allowed: 23.09.9 → 23.09.10 → 24.03.0 (2 hops).", result.StandardOutput.Trim());
    }

    [Theory]
    [InlineData("23.09.9 24.03.0", "refused (major-from-latest-minor): 23.09.9 → 24.03.0: a major upgrade starts only from the very latest minor of the prior release (23.09.10), not 23.09.9.")]
    [InlineData("23.03.0 24.03.0", "refused (no-major-skipped): 23.03.0 → 24.03.0 skips the 23.09 release: no major release is skipped.")]
    [InlineData("23.09.8 23.09.9 23.09.10 24.03.0 24.03.2", "refused (minor-consecutive): 24.03.0 → 24.03.2 skips 24.03.1: minor upgrades go consecutively, never skipping an intermediate release.")]
    public async Task Check_AForbiddenChain_Exits1_WithTheFirstForbiddenHopInOneLine(string chain, string line)
    {
        var result = await RunAsync(["upgrade-path", "check", "--product", "backend.ai", "--releases", Releases, .. chain.Split(' ')]);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal(line, result.StandardError.Trim());
        Assert.Equal("", result.StandardOutput.Trim());
    }

    [Fact]
    public async Task Plan_PrintsTheChain_OneVersionALine()
    {
        var result = await RunAsync("upgrade-path", "plan", "--product", "backend.ai", "--releases", Releases, "--from", "23.3.9", "--to", "24.03.0");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(["23.03.9", "23.03.10", "23.03.11", "23.09.10", "24.03.0"], result.StandardOutput.Trim().Split('\n'));
    }

    [Fact]
    public async Task Plan_AsJson_GivesEachHopsKind()
    {
        var result = await RunAsync("upgrade-path", "plan", "--product", "backend.ai", "--releases", Releases, "--from", "23.09.9", "--to", "24.03.5", "--json");
        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(result.StandardOutput);
        var hops = json.RootElement.GetProperty("hops").EnumerateArray().Select(h => $"{h.GetProperty("from").GetString()}>{h.GetProperty("to").GetString()}:{h.GetProperty("kind").GetString()}");
        Assert.Equal(["23.09.9>23.09.10:minor", "23.09.10>24.03.5:major"], hops);
    }

    [Fact]
    public async Task Plan_Backwards_Exits1_WithTheRefusal()
    {
        var result = await RunAsync("upgrade-path", "plan", "--product", "backend.ai", "--releases", Releases, "--from", "24.03.1", "--to", "23.09.10");
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("refused (forward):", result.StandardError.Trim(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--product omero --releases {0} --from 24.03.0 --to 24.03.1", "Unknown product 'omero'")]
    [InlineData("--product backend.ai --releases {0}.missing --from 24.03.0 --to 24.03.1", "Cannot read the releases file")]
    [InlineData("--product backend.ai --releases {0} --from 24.03 --to 24.03.1", "'24.03' is not a Backend.AI version")]
    [InlineData("--product backend.ai --releases {0} --from 24.03.0 --to 24.09.0rc1", "not a final release")]
    [InlineData("--product backend.ai --releases {0} --to 24.03.1", "--from")]
    public async Task AWrongArgument_Exits2_InOneLine(string args, string said)
    {
        var result = await RunAsync(["upgrade-path", "plan", .. string.Format(System.Globalization.CultureInfo.InvariantCulture, args, Releases).Split(' ')]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(said, result.StandardError, StringComparison.Ordinal);
        Assert.Single(result.StandardError.Trim().Split('\n'));
    }

    [Fact]
    public async Task AReleasesFileWithABadLine_Exits2_NamingTheLine()
    {
        var bad = Path.Combine(_directory, "bad.txt");
        await File.WriteAllLinesAsync(bad, ["24.03.0", "24.03.one"], TestContext.Current.CancellationToken);
        var result = await RunAsync("upgrade-path", "check", "--product", "backend.ai", "--releases", bad, "24.03.0", "24.03.1");
        Assert.Equal(2, result.ExitCode);
        Assert.Equal("bad.txt: line 2: '24.03.one' is not a Backend.AI version (YY.MM.patch, e.g. 24.03.5).", result.StandardError.Trim());
    }

    private Task<ProcessRunner.Result> RunAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args],
            environment: new Dictionary<string, string?>
            {
                // Nothing may be created: no data directory is needed for a pure check.
                ["UpgradeConsole__DataDirectory"] = Path.Combine(_directory, "not-created"),
                ["DOTNET_ENVIRONMENT"] = "Production",
            },
            workingDirectory: AppContext.BaseDirectory, check: false);

    public ValueTask DisposeAsync()
    {
        Assert.False(Directory.Exists(Path.Combine(_directory, "not-created")));
        Directory.Delete(_directory, recursive: true);
        return ValueTask.CompletedTask;
    }
}
