using System.Diagnostics;
using System.Globalization;
using UpgradeConsole.Core.Remote;

// Benchmarks of the remote engine against a real sshd (scripts/bench-remote.sh starts one and
// passes its address). Not a test: it prints figures for the issue notes.
//   dotnet run -c Release --project bench/UpgradeConsole.Benchmarks -- remote <host> <port> <user> <key> <known_hosts> [lines]
//   dotnet run -c Release --project bench/UpgradeConsole.Benchmarks -- users [count] [--trace]   (scripts/bench-users-grid.sh; --trace: where the tab's main thread spends its time)
//   dotnet run -c Release --project bench/UpgradeConsole.Benchmarks -- rehearsal [generated users=10000] [rehearsals=3] [upstream dump]   (scripts/bench-rehearsal-double.sh)
//   dotnet run -c Release --project bench/UpgradeConsole.Benchmarks -- live-log [lines] [seconds at 2000/s]   (scripts/bench-live-log.sh)
//   dotnet run -c Release --project bench/UpgradeConsole.Benchmarks -- phase-jobs [runs]   (scripts/bench-phase-jobs.sh)
//   dotnet run -c Release --project bench/UpgradeConsole.Benchmarks -- idle-streams [streams] [seconds]   (scripts/bench-idle-streams.sh)
//   dotnet run -c Release --project bench/UpgradeConsole.Benchmarks -- target-ops [rounds]   (scripts/bench-target-ops.sh)
//   dotnet run -c Release --project bench/UpgradeConsole.Benchmarks -- circuits ["1 10 25"] [seconds] [--trace]   (scripts/bench-circuits.sh)
//   dotnet run -c Release --project bench/UpgradeConsole.Benchmarks -- fleet [hosts=50] [ports per sshd=16] [rounds=3] [no-ansible]   (scripts/bench-fleet.sh)
if (args.Length >= 1 && args[0] == "live-log")
{
    return await UpgradeConsole.Benchmarks.LiveLogBenchmark.RunAsync(
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000_000,
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 20);
}

if (args.Length == 7 && args[0] == "live-log-viewers")
{
    var n = args[2..].Select(a => int.Parse(a, CultureInfo.InvariantCulture)).ToArray();
    return await UpgradeConsole.Benchmarks.LiveLogBenchmark.ViewersAsync(args[1], n[0], n[1], n[2], n[3], n[4]);
}

if (args.Length >= 1 && args[0] == "phase-jobs")
{
    return await UpgradeConsole.Benchmarks.PhaseJobsBenchmark.RunAsync(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5);
}

if (args.Length >= 1 && args[0] == "idle-streams")
{
    return await UpgradeConsole.Benchmarks.IdleStreamsBenchmark.RunAsync(
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 40,
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 30);
}

if (args.Length >= 1 && args[0] == "target-ops")
{
    return await UpgradeConsole.Benchmarks.TargetOpsBenchmark.RunAsync(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20);
}

if (args.Length >= 1 && args[0] == "circuits")
{
    // circuits "1 10 25" [seconds of live log per row] [--trace] [--nice-tabs]
    var tabs = (args.Length > 1 ? args[1] : "1 10 25").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(a => int.Parse(a, CultureInfo.InvariantCulture)).ToArray();
    return await UpgradeConsole.Benchmarks.CircuitsBenchmark.RunAsync(tabs, args.Length > 2 && !args[2].StartsWith("--", StringComparison.Ordinal) ? int.Parse(args[2], CultureInfo.InvariantCulture) : 20,
        trace: args.Contains("--trace"), niceTabs: args.Contains("--nice-tabs"));
}

if (args.Length >= 1 && args[0] == "fleet")
{
    int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
    return await UpgradeConsole.Benchmarks.FleetBenchmark.RunAsync(Arg(1, 50), Arg(2, 16), Arg(3, 3), ansible: args.Length <= 4 || args[4] != "no-ansible");
}

if (args.Length >= 1 && args[0] == "rehearsal")
{
    return await UpgradeConsole.Benchmarks.RehearsalBenchmark.RunAsync(
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10_000,
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 3,
        args.Length > 3 ? args[3] : null);
}

if (args.Length >= 1 && args[0] == "users")
{
    return await UpgradeConsole.Benchmarks.UsersBenchmark.RunAsync(
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10_000, trace: args.Contains("--trace"));
}

if (args.Length < 6 || args[0] != "remote")
{
    Console.Error.WriteLine("usage: remote <host> <port> <user> <private key> <known_hosts> [lines=1000000]");
    return 2;
}

if (Environment.GetEnvironmentVariable("UC_PRINT_SCRIPT") is { Length: > 0 } stepId)
{
    Console.Write(StepScripts.StartAndFollow(new RemoteStep { Location = new StepLocation("~/.upgradeconsole-bench/runs", "dump", stepId), Script = "true" }));
    return 0;
}

var lines = args.Length > 6 ? int.Parse(args[6], CultureInfo.InvariantCulture) : 1_000_000;
var control = Directory.CreateTempSubdirectory("uc-bench-").FullName;
var endpoint = new SshEndpoint
{
    Host = args[1],
    Port = int.Parse(args[2], CultureInfo.InvariantCulture),
    User = args[3],
    Identity = new SshIdentity.KeyFile(args[4]),
    KnownHostsFile = args[5],
    ControlPath = Path.Combine(control, "cm"),
    ControlPersist = TimeSpan.FromMinutes(5),
};
var openSsh = new OpenSshShell(endpoint);
var knownHost = File.ReadAllText(args[5]).Split(' ', StringSplitOptions.RemoveEmptyEntries);
await using var connection = new SshNetConnection(new SshNetEndpoint
{
    Host = endpoint.Host,
    Port = endpoint.Port,
    User = endpoint.User,
    Keys = [SshKeys.FromFile(args[4], null)],
    PinnedKey = new HostKey(knownHost[1], knownHost[2].Trim()),
});
var sshNet = new SshNetShell(connection);
var run = "bench-" + Guid.NewGuid().ToString("N")[..8];
StepLocation Step(string id) => new("~/.upgradeconsole-bench/runs", run, id);

// Warm both: the ControlMaster and the SSH.NET connection (a long-running dashboard has both up).
await SshAsync("true");
await sshNet.RunAsync("true", CancellationToken.None);
Console.WriteLine($"SSH.NET cipher: {(await connection.ClientAsync(CancellationToken.None)).ConnectionInfo.CurrentServerEncryption}");

// (a) 100 sequential trivial steps vs 100 `ssh host true` over the same ControlMaster, side by side: interleaved in
// 10 rounds of 10 each, so a change of the machine's load during the run weighs on every column alike.
var netEngine = new RemoteStepEngine(sshNet);
var osshEngine = new RemoteStepEngine(openSsh);
var (baseline, channels, openSshChannels, stepsSshNet, stepsOpenSsh) = (TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero);
for (var round = 0; round < 10; round++)
{
    baseline += await TenAsync(_ => SshAsync("true"));
    channels += await TenAsync(_ => sshNet.RunAsync("true", CancellationToken.None));
    openSshChannels += await TenAsync(_ => openSsh.RunAsync("true", CancellationToken.None));
    stepsSshNet += await TenAsync(i => TrivialStepAsync(netEngine, $"net-{round}-{i}"));
    stepsOpenSsh += await TenAsync(i => TrivialStepAsync(osshEngine, $"ossh-{round}-{i}"));
}

Console.WriteLine($"(a) 100 x ssh host true (ControlMaster):  {baseline.TotalMilliseconds,7:0} ms ({baseline.TotalMilliseconds / 100:0.0} ms each)");
Console.WriteLine($"(a) 100 x 'true' on an SSH.NET channel:     {channels.TotalMilliseconds,7:0} ms ({channels.TotalMilliseconds / 100:0.0} ms each)  ratio {channels / baseline:0.00} (transport only)");
Console.WriteLine($"(a) 100 x 'true' through the OpenSSH transport: {openSshChannels.TotalMilliseconds,7:0} ms ({openSshChannels.TotalMilliseconds / 100:0.0} ms each)  ratio {openSshChannels / baseline:0.00} (transport only)");
Console.WriteLine($"(a) 100 x trivial engine step, SSH.NET:    {stepsSshNet.TotalMilliseconds,7:0} ms ({stepsSshNet.TotalMilliseconds / 100:0.0} ms each)  ratio {stepsSshNet / baseline:0.00} (goal <= 1.0)");
Console.WriteLine($"(a) 100 x trivial engine step, OpenSSH:    {stepsOpenSsh.TotalMilliseconds,7:0} ms ({stepsOpenSsh.TotalMilliseconds / 100:0.0} ms each)  ratio {stepsOpenSsh / baseline:0.00} (goal <= 1.5)");

// (b) a step printing N lines of 100 bytes vs the same command over plain ssh into /dev/null.
var command = $"seq -f '%010g {new string('x', 88)}' 1 {lines}";
var plain = await TimeAsync(() => SshAsync(command));
var memoryBefore = PeakRss();
var (linesSshNet, received, bytes) = await LinesStepAsync(new RemoteStepEngine(sshNet), "lines-net");
var peakSshNet = PeakRss();
var (linesOpenSsh, _, _) = await LinesStepAsync(new RemoteStepEngine(openSsh), "lines-ossh");
Console.WriteLine($"(b) ssh host '<{lines} lines>' > /dev/null: {plain.TotalMilliseconds,7:0} ms");
Console.WriteLine($"(b) engine step, SSH.NET ({received} lines, {bytes / 1e6:0.0} MB, every line delivered): {linesSshNet.TotalMilliseconds,7:0} ms  ratio {linesSshNet / plain:0.00} (goal <= 1.25)");
Console.WriteLine($"(b) engine step, OpenSSH: {linesOpenSsh.TotalMilliseconds,7:0} ms  ratio {linesOpenSsh / plain:0.00}");
Console.WriteLine($"peak RSS of this process: {memoryBefore / 1e6:0.0} MB before (b), {peakSshNet / 1e6:0.0} MB after the SSH.NET step, {PeakRss() / 1e6:0.0} MB at the end (goal < 200 MB)");

await SshAsync($"rm -rf ~/.upgradeconsole-bench/runs/{run}");
await ProcessAsync("ssh", ["-o", "ControlPath=" + endpoint.ControlPath, "-O", "exit", "x"]);
Directory.Delete(control, recursive: true);
return 0;

async Task TrivialStepAsync(RemoteStepEngine engine, string id)
{
    var status = await engine.RunAsync(new RemoteStep { Location = Step(id), Script = "true" }, _ => ValueTask.CompletedTask, CancellationToken.None);
    if (status.ExitCode != 0)
    {
        throw new InvalidOperationException($"step {id} exited {status.ExitCode}");
    }
}

static async Task<TimeSpan> TenAsync(Func<int, Task> action) => await TimeAsync(async () =>
{
    for (var i = 0; i < 10; i++)
    {
        await action(i);
    }
});

async Task<(TimeSpan Elapsed, long Lines, long Bytes)> LinesStepAsync(RemoteStepEngine engine, string id)
{
    long received = 0;
    long bytes = 0;
    var elapsed = await TimeAsync(async () =>
    {
        var status = await engine.RunAsync(new RemoteStep { Location = Step(id), Script = command }, line =>
        {
            received++;
            bytes += line.NextOffset - line.Offset;
            return ValueTask.CompletedTask;
        }, CancellationToken.None);
        if (status.ExitCode != 0 || received != lines)
        {
            throw new InvalidOperationException($"exit {status.ExitCode}, {received} lines");
        }
    });
    return (elapsed, received, bytes);
}

async Task SshAsync(string command)
{
    // The plain ssh baseline: same options and ControlMaster as the engine, command on the command line.
    var code = await ProcessAsync("ssh", [.. endpoint.Options(), "--", endpoint.Destination, command], discardOutput: true);
    if (code != 0)
    {
        throw new InvalidOperationException($"ssh {command} exited {code}");
    }
}

static async Task<int> ProcessAsync(string file, string[] arguments, bool discardOutput = false)
{
    var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in arguments)
    {
        start.ArgumentList.Add(a);
    }

    using var process = Process.Start(start)!;
    var output = process.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
    var error = process.StandardError.ReadToEndAsync();
    await process.WaitForExitAsync();
    await output;
    await error;
    return process.ExitCode;
}

static async Task<TimeSpan> TimeAsync(Func<Task> action)
{
    var clock = Stopwatch.StartNew();
    await action();
    return clock.Elapsed;
}

// VmHWM: the process's peak resident set size.
static long PeakRss() =>
    long.Parse(File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
