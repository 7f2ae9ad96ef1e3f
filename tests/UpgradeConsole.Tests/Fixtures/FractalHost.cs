using System.Text;
using UpgradeConsole.Core.Remote;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// A fractal-server installation on the test sshd host, made the real way: a Python venv, the
/// test-double wheel of a given version built there and installed with pip from a local directory,
/// an env file, and a service script standing in for systemd (start / stop / is-active).
/// </summary>
public sealed class FractalHost : IAsyncDisposable
{
    private readonly IRemoteShell _shell;

    private FractalHost(IRemoteShell shell, string directory, int port)
    {
        _shell = shell;
        Directory = directory;
        Port = port;
    }

    /// <summary>The working directory on the host, <c>~/…</c>.</summary>
    public string Directory { get; }

    public int Port { get; }

    public string Python => Directory + "/venv/bin/python";

    public string StopCommand => $"{Directory}/service.sh stop";

    public string StartCommand => $"{Directory}/service.sh start";

    public string StatusCommand => $"{Directory}/service.sh is-active";

    public string ServerUrl => $"http://127.0.0.1:{Port}";

    public static async Task<FractalHost> CreateAsync(IRemoteShell shell, string version, string envFile)
    {
        var id = Guid.NewGuid().ToString("N")[..10];
        var dir = $"~/fractal-{id}";
        var port = Fixtures.ProcessRunner.FreePort();
        var host = new FractalHost(shell, dir, port);
        var script = new StringBuilder("set -eu\n");
        script.Append("d=").Append(ShellWords.QuotePath(dir)).Append('\n');
        script.Append("mkdir -p \"$d/double/fractal_server\"\n");
        var source = Path.Combine(AppContext.BaseDirectory, "FractalDouble");
        foreach (var file in System.IO.Directory.EnumerateFiles(source, "*.py", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(source, file);
            script.Append("printf '%s' '").Append(Convert.ToBase64String(await File.ReadAllBytesAsync(file)))
                .Append("' | base64 -d > \"$d/double/").Append(relative).Append("\"\n");
        }

        script.Append("printf '%s' '").Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(envFile))).Append("' | base64 -d > \"$d/.fractal_server.env\"\n");
        script.Append("printf '%s' '").Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(ServiceScript(port)))).Append("' | base64 -d > \"$d/service.sh\"\n");
        script.Append("chmod +x \"$d/service.sh\"\n");
        script.Append("/usr/bin/python3 \"$d/double/build_wheel.py\" ").Append(ShellWords.Quote(version)).Append(" \"$d/wheels\" >/dev/null\n");
        script.Append("/usr/bin/python3 -m venv \"$d/venv\"\n");
        script.Append("\"$d/venv/bin/pip\" install -q --disable-pip-version-check --no-index --find-links \"$d/wheels\" ").Append(ShellWords.Quote($"fractal-server=={version}")).Append('\n');
        script.Append("\"$d/service.sh\" start\n");
        var result = await shell.RunAsync(script.ToString(), CancellationToken.None, TimeSpan.FromMinutes(3));
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"Setting up the Fractal host double failed ({result.ExitCode}):\n{result.Output}\n{result.StandardError}");
        }

        return host;
    }

    /// <summary>Builds the double's wheel of another version into the local wheel directory pip installs from.</summary>
    public async Task BuildWheelAsync(string version)
    {
        var d = ShellWords.QuotePath(Directory);
        var result = await _shell.RunAsync($"/usr/bin/python3 {d}/double/build_wheel.py {ShellWords.Quote(version)} {d}/wheels", CancellationToken.None);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"Could not build the {version} wheel: {result.StandardError}");
        }
    }

    /// <summary>Writes (or replaces) a file in the working directory, e.g. the env file or slurm_config.json.</summary>
    public async Task WriteFileAsync(string name, string content)
    {
        var result = await _shell.RunAsync(
            $"printf '%s' {ShellWords.Quote(content)} > {ShellWords.QuotePath(Directory + "/" + name)}", CancellationToken.None);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"Could not write {name}: {result.StandardError}");
        }
    }

    /// <summary>Absolute working directory (the login shell expands ~).</summary>
    public async Task<string> AbsoluteDirectoryAsync() =>
        (await _shell.RunAsync($"cd {ShellWords.QuotePath(Directory)} && pwd", CancellationToken.None)).Output.Trim();

    public async ValueTask DisposeAsync()
    {
        await _shell.RunAsync($"d={ShellWords.QuotePath(Directory)}; \"$d/service.sh\" stop || true; rm -rf \"$d\"", CancellationToken.None);
    }

    private static string ServiceScript(int port) => $$"""
        #!/bin/sh
        # Stands in for systemd on the test host: start | stop | is-active, like `systemctl`.
        cd "$(dirname "$0")"
        case "$1" in
          start)
            if [ -f server.pid ] && kill -0 "$(cat server.pid)" 2>/dev/null; then exit 0; fi
            setsid nohup venv/bin/fractalctl start --port {{port}} >> server.log 2>&1 < /dev/null &
            echo $! > server.pid
            i=0
            until venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{{port}}/api/alive/', timeout=1)" 2>/dev/null; do
              i=$((i+1)); [ "$i" -gt 100 ] && { echo "fractal-server did not start"; tail -n 20 server.log; exit 1; }
              sleep 0.1
            done ;;
          stop)
            if [ -f server.pid ]; then kill "$(cat server.pid)" 2>/dev/null || true; rm -f server.pid; fi ;;
          is-active)
            if [ -f server.pid ] && kill -0 "$(cat server.pid)" 2>/dev/null; then echo active; else echo inactive; exit 3; fi ;;
          *) echo "usage: $0 start|stop|is-active"; exit 2 ;;
        esac
        """;
}
