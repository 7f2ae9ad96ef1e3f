using System.Text.Json;
using System.Text.RegularExpressions;
using UpgradeConsole.Core.EnvFiles;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Core.Fractal;

/// <summary>Where fractal-server lives on a target, as configured by an Admin.</summary>
public sealed record FractalLocation(string WorkingDirectory, string EnvFileName, string? PythonPath, string ServerUrl);

/// <summary>One env-file variable as shown to people: secrets masked.</summary>
public sealed record EnvVariable(string Name, string? Value, bool IsSecret);

/// <summary>What discovery found; every part records its own failure instead of failing the whole.</summary>
public sealed record FractalDiscoveryResult
{
    public string EnvFilePath { get; init; } = "";

    public string? EnvFileError { get; init; }

    public IReadOnlyList<EnvVariable> Variables { get; init; } = [];

    public IReadOnlyList<int> UnparseableLines { get; init; } = [];

    public string? Python { get; init; }

    /// <summary>Where the Python came from: the target's setting, FRACTAL_SLURM_WORKER_PYTHON, or fractalctl's interpreter.</summary>
    public string? PythonSource { get; init; }

    public string? PythonError { get; init; }

    /// <summary>The version pip reports installed (<c>pip show fractal-server</c>).</summary>
    public string? InstalledVersion { get; init; }

    public string? InstalledVersionError { get; init; }

    /// <summary>The version the running server reports at <c>/api/alive/</c>.</summary>
    public string? AliveVersion { get; init; }

    public bool? Alive { get; init; }

    public string? AliveError { get; init; }
}

/// <summary>
/// Reads a Fractal target's configuration over SSH: the env file (python-dotenv's rules), the
/// server's Python, the installed fractal-server version and what <c>/api/alive/</c> says.
/// </summary>
public static partial class FractalDiscovery
{
    /// <summary>Variables whose values are never shown, logged or stored unmasked.</summary>
    public static bool IsSecret(string name) => SecretName().IsMatch(name);

    public const string Mask = "••••";

    /// <summary>Reads the env file's text (null when it cannot be read, with the reason).</summary>
    public static async Task<(string? Text, string? Error)> ReadEnvFileAsync(IRemoteShell shell, FractalLocation location, CancellationToken ct)
    {
        var path = EnvFilePath(location);
        var result = await shell.RunAsync($"cat -- {ShellWords.QuotePath(path)}", ct, TimeSpan.FromSeconds(30));
        return result.ExitCode == 0 ? (result.Output, null) : (null, $"Cannot read {path}: {result.StandardError.Trim()}");
    }

    public static string EnvFilePath(FractalLocation location) => location.WorkingDirectory.TrimEnd('/') + "/" + location.EnvFileName;

    public static Task<FractalDiscoveryResult> DiscoverAsync(IRemoteShell shell, FractalLocation location, CancellationToken ct) =>
        DiscoverAsync(shell, location, null, ct);

    /// <summary>Discovery with the env file's text already read (null: read it here).</summary>
    public static async Task<FractalDiscoveryResult> DiscoverAsync(IRemoteShell shell, FractalLocation location, string? envText, CancellationToken ct)
    {
        var result = new FractalDiscoveryResult { EnvFilePath = EnvFilePath(location) };
        var (text, envError) = envText is not null ? (envText, null) : await ReadEnvFileAsync(shell, location, ct);
        IReadOnlyDictionary<string, string?> values = new Dictionary<string, string?>();
        if (text is not null)
        {
            var file = DotEnvFile.Parse(text);
            values = file.Values();
            result = result with
            {
                Variables = values.Select(kv => new EnvVariable(kv.Key, IsSecret(kv.Key) && kv.Value is not null ? Mask : kv.Value, IsSecret(kv.Key))).ToList(),
                UnparseableLines = file.ErrorLines.ToList(),
            };
        }
        else
        {
            result = result with { EnvFileError = envError };
        }

        var (python, source, pythonError) = await FindPythonAsync(shell, location, values, ct);
        result = result with { Python = python, PythonSource = source, PythonError = pythonError };
        if (python is not null)
        {
            // Independent: both at once over the one connection. The version from the package's metadata as pip would
            // print it ("Version: …"): importing pip to ask it costs ten times the CPU (most of a second, issue 17 item 9);
            // pip itself answers only where the metadata cannot be read that way, with its own words.
            var py = ShellWords.QuotePath(python);
            var showing = shell.RunAsync(
                $"{py} -c 'import importlib.metadata as m; print(\"Version: \" + m.version(\"fractal-server\"))' 2>/dev/null || {py} -m pip show fractal-server 2>&1",
                ct, TimeSpan.FromSeconds(120));
            var asking = shell.RunAsync(
                $$"""
                {{ShellWords.QuotePath(python)}} - {{ShellWords.Quote(location.ServerUrl.TrimEnd('/') + "/api/alive/")}} <<'PY'
                import sys, urllib.request
                try:
                    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
                except Exception as e:
                    print("ERROR: %s" % e)
                    sys.exit(1)
                PY
                """, ct, TimeSpan.FromSeconds(60));
            await Task.WhenAll(showing, asking);
            var show = await showing;
            var version = PipVersion().Match(show.Output);
            result = show.ExitCode == 0 && version.Success
                ? result with { InstalledVersion = version.Groups[1].Value.Trim() }
                : result with { InstalledVersionError = $"pip show fractal-server: {show.Output.Trim()}" };
            result = ParseAlive(result, await asking);
        }

        return result;
    }

    private static FractalDiscoveryResult ParseAlive(FractalDiscoveryResult result, RemoteResult alive)
    {
        if (alive.ExitCode != 0)
        {
            return result with { Alive = false, AliveError = alive.Output.Trim() + alive.StandardError.Trim() };
        }

        try
        {
            using var json = JsonDocument.Parse(alive.Output);
            return result with
            {
                Alive = json.RootElement.TryGetProperty("alive", out var a) && a.ValueKind == JsonValueKind.True,
                AliveVersion = json.RootElement.TryGetProperty("version", out var v) ? v.GetString() : null,
            };
        }
        catch (JsonException)
        {
            return result with { Alive = false, AliveError = "Not JSON: " + alive.Output.Trim() };
        }
    }

    private static async Task<(string? Python, string? Source, string? Error)> FindPythonAsync(
        IRemoteShell shell, FractalLocation location, IReadOnlyDictionary<string, string?> env, CancellationToken ct)
    {
        var candidates = new List<(string Path, string Source)>();
        if (!string.IsNullOrWhiteSpace(location.PythonPath))
        {
            candidates.Add((location.PythonPath, "the target's Python setting"));
        }

        if (env.GetValueOrDefault("FRACTAL_SLURM_WORKER_PYTHON") is { Length: > 0 } worker)
        {
            candidates.Add((worker, "FRACTAL_SLURM_WORKER_PYTHON"));
        }

        foreach (var (path, source) in candidates)
        {
            var check = await shell.RunAsync($"test -x {ShellWords.QuotePath(path)} && echo ok", ct, TimeSpan.FromSeconds(30));
            if (check.Output.Trim() == "ok")
            {
                return (path, source, null);
            }
        }

        // The interpreter fractalctl runs with (its shebang line).
        var fromCtl = await shell.RunAsync("p=$(command -v fractalctl) && head -n1 \"$p\" | sed -n 's/^#![ ]*//p'", ct, TimeSpan.FromSeconds(30));
        var shebang = fromCtl.Output.Trim();
        if (fromCtl.ExitCode == 0 && shebang.StartsWith('/'))
        {
            return (shebang.Split(' ')[0], "the interpreter of fractalctl on PATH", null);
        }

        var tried = string.Join(", ", candidates.Select(c => c.Path));
        return (null, null, "No Python of fractal-server found" + (tried.Length > 0 ? $" (not executable: {tried})" : "") +
            ". Set FRACTAL_SLURM_WORKER_PYTHON, or the target's Python path.");
    }

    [GeneratedRegex("(PASSWORD|SECRET|TOKEN|_KEY$|PRIVATE)", RegexOptions.IgnoreCase)]
    private static partial Regex SecretName();

    [GeneratedRegex(@"^Version:\s*(\S+)", RegexOptions.Multiline)]
    private static partial Regex PipVersion();
}
