using Hangfire;
using Microsoft.EntityFrameworkCore;
using Prometheus;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Web.Metrics;

/// <summary>
/// What <c>/metrics</c> shows (Prometheus text format, prometheus-net), in a registry of this dashboard's own (not the
/// process-wide default, so two dashboards in one process — the tests — never mix their figures). Counters and the
/// phase-duration histogram are fed where things happen; the state of runs, the job queue and the audit chain are read
/// from the database and the job storage at each scrape.
/// </summary>
public sealed class DashboardMetrics
{
    private readonly Counter _linesStored;
    private readonly Counter _linesPushed;
    private readonly Counter _sshConnections;
    private readonly Counter _sshFailures;
    private readonly Histogram _phaseDurations;
    private readonly Gauge _runs;
    private readonly Gauge _activeRuns;
    private readonly Gauge _jobs;
    private readonly Gauge _auditEvents;
    private readonly Gauge _targets;

    public DashboardMetrics(IServiceScopeFactory scopes)
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var factory = Prometheus.Metrics.WithCustomRegistry(Registry);
        _linesStored = factory.CreateCounter("upgradeconsole_log_lines_stored_total", "Run log lines stored in the dashboard's database by this node.");
        _linesPushed = factory.CreateCounter("upgradeconsole_log_lines_pushed_total", "Run log lines pushed to live viewers (SignalR) by this node.");
        _sshConnections = factory.CreateCounter("upgradeconsole_ssh_connections_total", "SSH connections opened to targets by this node.", "target");
        _sshFailures = factory.CreateCounter("upgradeconsole_ssh_failures_total", "SSH commands or connections to targets that failed, by kind.", "target", "kind");
        _phaseDurations = factory.CreateHistogram("upgradeconsole_phase_duration_seconds", "How long run phases took, from their start to their end, by outcome.",
            new HistogramConfiguration
            {
                LabelNames = ["runbook", "phase", "outcome"],
                Buckets = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400],
            });
        _runs = factory.CreateGauge("upgradeconsole_runs", "Runs in the dashboard's database by state.", "state");
        _activeRuns = factory.CreateGauge("upgradeconsole_runs_active", "Runs executing now (Running or RollingBack).");
        _jobs = factory.CreateGauge("upgradeconsole_jobs", "Background jobs in the job storage by state (enqueued is the queue length).", "state");
        _auditEvents = factory.CreateGauge("upgradeconsole_audit_chain_length", "Events in the audit chain.");
        _targets = factory.CreateGauge("upgradeconsole_targets", "Targets by host-key state (Mismatch: blocked until an Admin re-pins).", "host_key");

        Registry.AddBeforeCollectCallback(async ct =>
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var byState = await db.Runs.AsNoTracking().GroupBy(r => r.State).Select(g => new { g.Key, Count = g.Count() }).ToListAsync(ct);
            foreach (var state in Enum.GetValues<RunState>())
            {
                _runs.WithLabels(state.ToString()).Set(byState.FirstOrDefault(s => s.Key == state)?.Count ?? 0);
            }

            _activeRuns.Set(byState.Where(s => RunStateMachine.IsMoving(s.Key)).Sum(s => s.Count));
            _auditEvents.Set(await db.AuditEvents.MaxAsync(e => (long?)e.Id, ct) ?? 0);
            var keys = await db.Targets.AsNoTracking().GroupBy(t => t.HostKeyState).Select(g => new { g.Key, Count = g.Count() }).ToListAsync(ct);
            foreach (var state in Enum.GetValues<Targets.HostKeyState>())
            {
                _targets.WithLabels(state.ToString()).Set(keys.FirstOrDefault(s => s.Key == state)?.Count ?? 0);
            }

            var storage = scope.ServiceProvider.GetService<JobStorage>();
            if (storage is not null)
            {
                var monitor = storage.GetMonitoringApi();
                var stats = monitor.GetStatistics();
                _jobs.WithLabels("enqueued").Set(stats.Enqueued);
                _jobs.WithLabels("scheduled").Set(stats.Scheduled);
                _jobs.WithLabels("processing").Set(stats.Processing);
                _jobs.WithLabels("failed").Set(stats.Failed);
            }
        });
    }

    public CollectorRegistry Registry { get; }

    public void LinesStored(int lines) => _linesStored.Inc(lines);

    public void LinesPushed(int lines) => _linesPushed.Inc(lines);

    public void SshConnectionOpened(string target) => _sshConnections.WithLabels(target).Inc();

    public void SshFailed(string target, Exception error) => _sshFailures.WithLabels(target, KindOf(error)).Inc();

    public void PhaseEnded(string runbook, string phase, string outcome, TimeSpan took) =>
        _phaseDurations.WithLabels(runbook, phase, outcome).Observe(Math.Max(0, took.TotalSeconds));

    /// <summary>A failure's kind as a label with few values (never the message: it may name paths or users).</summary>
    public static string KindOf(Exception error) => error switch
    {
        SshConnectionException c => c.Failure switch
        {
            SshFailure.HostKeyChanged => "host-key-changed",
            SshFailure.KeyRefused or SshFailure.BadKey => "authentication",
            SshFailure.Dns or SshFailure.Unreachable => "unreachable",
            SshFailure.Timeout => "timeout",
            SshFailure.Lost => "connection-lost",
            _ => "connection",
        },
        TimeoutException => "timeout",
        RemoteCommandException => "remote-command",
        _ => "other",
    };
}
