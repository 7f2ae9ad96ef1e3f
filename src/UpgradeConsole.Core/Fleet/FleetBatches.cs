using System.Globalization;

namespace UpgradeConsole.Core.Fleet;

/// <summary>How many hosts a rolling batch holds: a count, a percentage of the fleet, or every host at once.</summary>
public sealed record FleetBatchSize
{
    private FleetBatchSize(int? hosts, int? percent)
    {
        Hosts = hosts;
        Percent = percent;
    }

    /// <summary>A fixed number of hosts per batch (the last batch may be smaller).</summary>
    public int? Hosts { get; }

    /// <summary>A percentage of the fleet per batch, rounded up, at least one host.</summary>
    public int? Percent { get; }

    /// <summary>One batch holding every host (a step that is not rolled, e.g. a major upgrade's stop).</summary>
    public static FleetBatchSize All { get; } = new(null, null);

    public static FleetBatchSize OfHosts(int hosts) =>
        hosts >= 1 ? new(hosts, null) : throw new ArgumentOutOfRangeException(nameof(hosts), hosts, "A batch holds at least one host.");

    public static FleetBatchSize OfPercent(int percent) =>
        percent is >= 1 and <= 100 ? new(null, percent) : throw new ArgumentOutOfRangeException(nameof(percent), percent, "A batch is 1 to 100 % of the hosts.");

    /// <summary>Reads what a person types on the plan: <c>10</c> (hosts), <c>25%</c>, or <c>all</c>.</summary>
    public static bool TryParse(string? text, out FleetBatchSize size, out string? problem)
    {
        size = All;
        problem = null;
        var value = (text ?? "").Trim();
        if (value.Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        if (value.EndsWith('%'))
        {
            if (int.TryParse(value[..^1].TrimEnd(), NumberStyles.None, CultureInfo.InvariantCulture, out var percent) && percent is >= 1 and <= 100)
            {
                size = OfPercent(percent);
                return true;
            }

            problem = $"'{value}' is not a percentage from 1% to 100%.";
            return false;
        }

        if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var hosts) && hosts >= 1)
        {
            size = OfHosts(hosts);
            return true;
        }

        problem = $"'{value}' is not a batch size: give a number of hosts (e.g. 10), a percentage (e.g. 25%) or 'all'.";
        return false;
    }

    /// <summary>The number of hosts in each full batch of a fleet of <paramref name="fleetSize"/> hosts.</summary>
    public int HostsPerBatch(int fleetSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fleetSize);
        if (fleetSize == 0)
        {
            return 0;
        }

        if (Hosts is { } hosts)
        {
            return Math.Min(hosts, fleetSize);
        }

        if (Percent is { } percent)
        {
            // Rounded up: 25% of 10 hosts is 3, never 2; and never 0.
            return Math.Max(1, (int)Math.Min(fleetSize, ((long)fleetSize * percent + 99) / 100));
        }

        return fleetSize;
    }

    public override string ToString() =>
        Hosts is { } h ? h.ToString(CultureInfo.InvariantCulture) : Percent is { } p ? p.ToString(CultureInfo.InvariantCulture) + "%" : "all";
}

/// <summary>Splits a fleet into rolling batches, in the order given.</summary>
public static class FleetBatches
{
    /// <summary>The batches of <paramref name="hosts"/>: consecutive, in order, each host in exactly one.</summary>
    public static IReadOnlyList<IReadOnlyList<T>> Split<T>(IReadOnlyList<T> hosts, FleetBatchSize size)
    {
        ArgumentNullException.ThrowIfNull(hosts);
        ArgumentNullException.ThrowIfNull(size);
        var per = size.HostsPerBatch(hosts.Count);
        var batches = new List<IReadOnlyList<T>>();
        for (var start = 0; start < hosts.Count; start += per)
        {
            batches.Add([.. hosts.Skip(start).Take(per)]);
        }

        return batches;
    }
}

/// <summary>
/// When a rollout stops: after more than <see cref="AllowedFailures"/> hosts failed or could not be reached
/// (0: at the first one). Hosts already running finish their step (none is left mid-step); no new host starts.
/// </summary>
public sealed record FleetFailurePolicy(int AllowedFailures = 0)
{
    public static FleetFailurePolicy StopAtFirstFailure { get; } = new(0);

    public int AllowedFailures { get; } = AllowedFailures >= 0
        ? AllowedFailures
        : throw new ArgumentOutOfRangeException(nameof(AllowedFailures), AllowedFailures, "Allowed failures cannot be negative.");

    /// <summary>Whether a rollout with <paramref name="failures"/> failed or unreachable hosts must start no other host.</summary>
    public bool MustStop(int failures) => failures > AllowedFailures;
}
