using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using UpgradeConsole.Core.Fleet;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// Issue 16, fleet execution: one trivial step (<c>true</c>) and one 1,000-line step on N sshd hosts of 127.0.0.1
/// (<see cref="SshFleet"/>: daemons × ports, each port a host with its own home), side by side in one run with
/// parallel-ssh (<c>-p 50</c>, output per host to files) and Ansible (<c>ansible all -f 50 -m shell</c>, pipelining on,
/// output to a file), cold (fresh connections: no ControlMaster for the two tools, new SSH.NET connections for the
/// executor, their handshakes timed) and warm (ControlMaster masters up; the executor's connections kept). The executor
/// runs in this process, as in the dashboard (no process start timed); the tools are processes, as a person runs them.
/// Each figure is the median of the rounds; the tools and the executor alternate within a round. Also: this process's
/// memory with every host's log live, and a check that every host's every line was stored once.
/// </summary>
internal static class FleetBenchmark
{
    private const int Bound = 50;

    /// <summary>Like parallel-ssh's <c>-t 0</c>: on a loaded 2-core machine 50 handshakes at once take longer than the default 15 s.</summary>
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromMinutes(2);

    private static readonly string[] PsshPaths = ["/usr/bin/parallel-ssh", "/usr/bin/pssh"];

    private static readonly string[] Rows = ["pssh cold", "ansible cold", "executor cold", "pssh warm", "ansible warm", "executor warm"];

    private static readonly (string Name, string Command, int Lines)[] Steps =
        [("true", "true", 0), ("1,000 lines", "seq -f 'line %g of a thousand-line step' 1000", 1000)];

    public static async Task<int> RunAsync(int hosts, int portsPerDaemon, int rounds, bool ansible = true)
    {
        var pssh = PsshPaths.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("parallel-ssh not found: apt-get install pssh");
        if (ansible && !File.Exists("/usr/bin/ansible"))
        {
            throw new InvalidOperationException("ansible not found: apt-get install ansible");
        }

        await using var fleet = await SshFleet.StartAsync(hosts, portsPerDaemon);
        var work = Directory.CreateTempSubdirectory("uc-bench-fleet-").FullName;
        try
        {
            var hostsFile = Path.Combine(work, "hosts");
            await File.WriteAllLinesAsync(hostsFile, fleet.Hosts.Select(h => $"{fleet.User}@127.0.0.1:{h.Port}"));
            var inventory = Path.Combine(work, "inventory");
            await File.WriteAllLinesAsync(inventory, ["[fleet]", .. fleet.Hosts.Select(h =>
                $"{h.Label} ansible_host=127.0.0.1 ansible_port={h.Port} ansible_user={fleet.User} ansible_ssh_private_key_file={fleet.ClientKeyPath} ansible_python_interpreter=/usr/bin/python3")]);
            var controlDir = Directory.CreateDirectory(Path.Combine(work, "cm")).FullName;
            var commonSsh = $"-o UserKnownHostsFile={fleet.KnownHostsPath} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes";
            await File.WriteAllTextAsync(Path.Combine(work, "ansible-cold.cfg"), AnsibleConfig(work, $"{commonSsh} -o ControlMaster=no -o ControlPath=none"));
            await File.WriteAllTextAsync(Path.Combine(work, "ansible-warm.cfg"), AnsibleConfig(work, $"{commonSsh} -o ControlMaster=auto -o ControlPersist=300s"));

            Console.WriteLine($"{hosts} sshd hosts on 127.0.0.1 ({(hosts + portsPerDaemon - 1) / portsPerDaemon} sshd × {portsPerDaemon} ports), bound {Bound}, {rounds} rounds, median wall time; {Environment.ProcessorCount} cores; load: {Load()}");
            Console.WriteLine($"parallel-ssh: {pssh} -p {Bound} -h FILE -o DIR -x '-i KEY {commonSsh}' [-O ControlMaster/ControlPath/ControlPersist when warm] CMD");
            Console.WriteLine($"ansible: ansible all -i INVENTORY -f {Bound} -m shell -a CMD (ANSIBLE_CONFIG: pipelining=True, ssh_args '{commonSsh} -o ControlMaster=no|auto ...')");
            Console.WriteLine();

            var warmConnections = fleet.Hosts.Select((_, i) => new SshNetConnection(fleet.Endpoint(i) with { ConnectTimeout = ConnectTimeout })).ToList();
            try
            {
                // Warm-up of every path (JIT, masters, connections); not timed.
                await OursAsync(fleet, warmConnections, "true", 0, "warmup");
                await ToolAsync(pssh, PsshArgs(fleet, hostsFile, work, commonSsh, controlDir, warm: true, "true"));
                if (ansible)
                {
                    await ToolAsync("ansible", AnsibleArgs(inventory, "true"), Path.Combine(work, "ansible-warm.cfg"));
                }

                foreach (var (name, command, lines) in Steps)
                {
                    var results = new Dictionary<string, List<double>>();
                    void Add(string key, double ms) => (results.TryGetValue(key, out var l) ? l : results[key] = []).Add(ms);
                    long storedLines = 0;
                    var memory = "";
                    for (var r = 0; r < rounds; r++)
                    {
                        Add("pssh cold", await ToolAsync(pssh, PsshArgs(fleet, hostsFile, work, commonSsh, controlDir, warm: false, command)));
                        if (ansible)
                        {
                            Add("ansible cold", await ToolAsync("ansible", AnsibleArgs(inventory, command), Path.Combine(work, "ansible-cold.cfg")));
                        }

                        var fresh = fleet.Hosts.Select((_, i) => new SshNetConnection(fleet.Endpoint(i) with { ConnectTimeout = ConnectTimeout })).ToList();
                        try
                        {
                            var cold = await OursAsync(fleet, fresh, command, lines, $"c{r}");
                            Add("executor cold", cold.Ms);
                        }
                        finally
                        {
                            foreach (var c in fresh)
                            {
                                await c.DisposeAsync();
                            }
                        }

                        Add("pssh warm", await ToolAsync(pssh, PsshArgs(fleet, hostsFile, work, commonSsh, controlDir, warm: true, command)));
                        if (ansible)
                        {
                            Add("ansible warm", await ToolAsync("ansible", AnsibleArgs(inventory, command), Path.Combine(work, "ansible-warm.cfg")));
                        }

                        var warm = await OursAsync(fleet, warmConnections, command, lines, $"w{r}");
                        Add("executor warm", warm.Ms);
                        storedLines = warm.Stored;
                        memory = warm.Memory;
                    }

                    var m = results.ToDictionary(p => p.Key, p => Median(p.Value));
                    Console.WriteLine($"step: {name}");
                    foreach (var key in Rows.Where(results.ContainsKey))
                    {
                        Console.WriteLine(FormattableString.Invariant($"  {key,-14} {m[key],8:F0} ms   (rounds: {string.Join(" ", results[key].Select(v => v.ToString("F0", CultureInfo.InvariantCulture)))})"));
                    }

                    Console.WriteLine(FormattableString.Invariant($"  ratio to parallel-ssh: cold {m["executor cold"] / m["pssh cold"]:F2}× (goal ≤ 1.1×), warm {m["executor warm"] / m["pssh warm"]:F2}× (goal ≤ 1.0×){(ansible ? FormattableString.Invariant($"; ansible cold {m["ansible cold"] / m["pssh cold"]:F2}×, warm {m["ansible warm"] / m["pssh warm"]:F2}×") : "; ansible not run")}"));
                    Console.WriteLine($"  lines stored (last warm round): {storedLines} = {hosts} hosts × {lines} lines, each once; {memory}");
                    Console.WriteLine($"  load: {Load()}");
                    Console.WriteLine();
                }
            }
            finally
            {
                foreach (var c in warmConnections)
                {
                    await c.DisposeAsync();
                }

                // Masters of the warm parallel-ssh and Ansible rounds end now rather than after ControlPersist.
                foreach (var socket in Directory.EnumerateFiles(controlDir).Concat(Directory.Exists(Path.Combine(work, "acp")) ? Directory.EnumerateFiles(Path.Combine(work, "acp")) : []))
                {
                    await ProcessRunner.RunAsync("ssh", ["-o", $"ControlPath={socket}", "-O", "exit", "x"], check: false);
                }
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }

        return 0;
    }

    private static string AnsibleConfig(string work, string sshArgs) => $"""
        [defaults]
        host_key_checking = True
        forks = {Bound}
        stdout_callback = minimal
        interpreter_python = /usr/bin/python3
        local_tmp = {work}/ansible-local
        [ssh_connection]
        pipelining = True
        ssh_args = {sshArgs}
        control_path_dir = {work}/acp
        """;

    private static string[] AnsibleArgs(string inventory, string command) => ["all", "-i", inventory, "-f", Bound.ToString(CultureInfo.InvariantCulture), "-m", "shell", "-a", command];

    private static string[] PsshArgs(SshFleet fleet, string hostsFile, string work, string commonSsh, string controlDir, bool warm, string command)
    {
        var output = Path.Combine(work, "pssh-out");
        if (Directory.Exists(output))
        {
            Directory.Delete(output, recursive: true);
        }

        string[] control = warm
            ? ["-O", "ControlMaster=auto", "-O", $"ControlPath={controlDir}/%C", "-O", "ControlPersist=300"]
            : ["-O", "ControlMaster=no", "-O", "ControlPath=none"];
        return ["-p", Bound.ToString(CultureInfo.InvariantCulture), "-t", "0", "-h", hostsFile, "-o", output, "-x", $"-i {fleet.ClientKeyPath} {commonSsh}", .. control, command];
    }

    private static async Task<double> ToolAsync(string tool, string[] args, string? ansibleConfig = null)
    {
        var clock = Stopwatch.StartNew();
        var result = await ProcessRunner.RunAsync(tool, args, environment: ansibleConfig is null ? null : new Dictionary<string, string?> { ["ANSIBLE_CONFIG"] = ansibleConfig }, timeout: TimeSpan.FromMinutes(10), check: false);
        var ms = clock.Elapsed.TotalMilliseconds;
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"{tool} {string.Join(' ', args)} exited with {result.ExitCode}:\n{(result.Combined.Length > 4000 ? result.Combined[..4000] : result.Combined)}");
        }

        return ms;
    }

    private sealed class CountingLog : IFleetLog
    {
        public ConcurrentDictionary<string, ConcurrentQueue<string>> Hosts { get; } = new();

        public ValueTask WriteAsync(FleetLogLine line, CancellationToken cancellationToken)
        {
            Hosts.GetOrAdd(line.Host, _ => new()).Enqueue(line.Prefixed);
            return ValueTask.CompletedTask;
        }
    }

    private static async Task<(double Ms, long Stored, string Memory)> OursAsync(SshFleet fleet, List<SshNetConnection> connections, string command, int lines, string round)
    {
        var hosts = fleet.Hosts.Select((m, i) => new FleetHost(m.Label, new SshNetShell(connections[i]))).ToList();
        var log = new CountingLog();
        var peakLive = 0L;
        var peakPending = 0L;
        var peakThreads = 0;
        using var executor = new FleetExecutor(hosts, new FleetStep { RunId = "bench-fleet", StepId = round + "-" + Guid.NewGuid().ToString("N")[..8], Script = command }, log,
            new FleetOptions
            {
                MaxConcurrency = Bound,
                OnHostChanged = _ =>
                {
                    Interlocked.Exchange(ref peakLive, Math.Max(Interlocked.Read(ref peakLive), GC.GetTotalMemory(false)));
                    Interlocked.Exchange(ref peakPending, Math.Max(Interlocked.Read(ref peakPending), ThreadPool.PendingWorkItemCount));
                    Interlocked.Exchange(ref peakThreads, Math.Max(Volatile.Read(ref peakThreads), ThreadPool.ThreadCount));
                },
            });
        var clock = Stopwatch.StartNew();
        var outcome = await executor.RunAsync(CancellationToken.None);
        var ms = clock.Elapsed.TotalMilliseconds;
        if (!outcome.Succeeded)
        {
            throw new InvalidOperationException(outcome.Summary + "\n" + string.Join("\n", outcome.Hosts.Where(h => h.State != FleetHostState.Succeeded).Select(h => h.Describe())));
        }

        long stored = 0;
        foreach (var host in fleet.Hosts)
        {
            var hostLines = log.Hosts.TryGetValue(host.Label, out var q) ? q.ToList() : [];
            if (hostLines.Count != lines || hostLines.Distinct().Count() != lines)
            {
                throw new InvalidOperationException($"{host.Label}: {hostLines.Count} line(s) stored, {hostLines.Distinct().Count()} distinct, expected {lines} once each");
            }

            stored += hostLines.Count;
        }

        using var self = Process.GetCurrentProcess();
        var memory = FormattableString.Invariant($"this process: working set {self.WorkingSet64 / 1048576.0:F0} MiB, peak {self.PeakWorkingSet64 / 1048576.0:F0} MiB, managed heap {GC.GetTotalMemory(false) / 1048576.0:F1} MiB (at host changes up to {peakLive / 1048576.0:F1} MiB) with {hosts.Count} connections and host logs held; thread pool: up to {peakThreads} threads, {peakPending} queued work items at host changes");
        return (ms, stored, memory);
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Load() => File.ReadAllText("/proc/loadavg").Trim();
}
