namespace UpgradeConsole.Core.BackendAi;

/// <summary>The released versions an upgrade path may go through, read from a list in any order.</summary>
public sealed class BackendAiReleases
{
    private readonly SortedSet<BackendAiVersion> versions;

    public BackendAiReleases(IEnumerable<BackendAiVersion> versions) => this.versions = [.. versions];

    public IReadOnlyCollection<BackendAiVersion> Versions => versions;

    /// <summary>Lines skipped while reading (pre-releases), each with the reason.</summary>
    public IReadOnlyList<string> Skipped { get; private init; } = [];

    public bool Contains(BackendAiVersion v) => versions.Contains(v);

    /// <summary>
    /// Reads one version a line; blank lines and <c>#</c> comments are ignored, pre-releases skipped (with the
    /// reason in <see cref="Skipped"/>). Anything else that is not a version is an error naming its line.
    /// </summary>
    public static BackendAiReleases Read(IEnumerable<string> lines, out string? error)
    {
        var found = new List<BackendAiVersion>();
        var skipped = new List<string>();
        var number = 0;
        foreach (var raw in lines)
        {
            number++;
            var line = raw.Split('#', 2)[0].Trim();
            if (line.Length == 0)
            {
                continue;
            }

            if (BackendAiVersion.TryParse(line, out var v, out var why))
            {
                found.Add(v);
            }
            else if (why!.Contains("pre- or post-release", StringComparison.Ordinal))
            {
                skipped.Add($"line {number}: {why}");
            }
            else
            {
                error = $"line {number}: {why}";
                return new([]);
            }
        }

        error = found.Count == 0 ? "The list names no released version." : null;
        return new(found) { Skipped = skipped };
    }

    /// <summary>The release that follows <paramref name="v"/> in its own series, if any.</summary>
    public BackendAiVersion? NextInSeries(BackendAiVersion v) =>
        versions.GetViewBetween(v, new(v.Year, v.Month, int.MaxValue)).Where(x => x > v).Select(x => (BackendAiVersion?)x).FirstOrDefault();

    /// <summary>The newest release of a series.</summary>
    public BackendAiVersion? Latest(BackendAiSeries s) =>
        versions.GetViewBetween(new(s.Year, s.Month, 0), new(s.Year, s.Month, int.MaxValue)).Select(x => (BackendAiVersion?)x).LastOrDefault();

    /// <summary>The first series released after <paramref name="s"/>, if any.</summary>
    public BackendAiSeries? NextSeries(BackendAiSeries s) =>
        versions.Where(x => x.Series > s).Select(x => (BackendAiSeries?)x.Series).FirstOrDefault();
}

/// <summary>Which rule of the upgrade guide a hop keeps or breaks.</summary>
public enum UpgradeRule
{
    /// <summary>Both ends are released versions.</summary>
    Released,

    /// <summary>An upgrade goes forward.</summary>
    Forward,

    /// <summary>Minor upgrades go consecutively, never skipping an intermediate release.</summary>
    MinorConsecutive,

    /// <summary>No major release is skipped.</summary>
    NoMajorSkipped,

    /// <summary>A major upgrade starts only from the very latest minor of the prior release.</summary>
    MajorFromLatestMinor,
}

public enum HopKind
{
    /// <summary>Within a series: rolling, host by host or in batches.</summary>
    Minor,

    /// <summary>Into the next series: no rolling, downtime announced, every component stopped.</summary>
    Major,
}

/// <summary>One upgrade of the chain: a run of its own.</summary>
public sealed record UpgradeHop(BackendAiVersion From, BackendAiVersion To, HopKind Kind);

/// <summary>A hop the guide forbids, with the rule it breaks, in one sentence.</summary>
public sealed record HopRefusal(BackendAiVersion From, BackendAiVersion To, UpgradeRule Rule, string Reason);

/// <summary>
/// The upgrade-path rules of Backend.AI's upgrade guide (shared/design/runbooks.md): minor upgrades go
/// consecutively, never skipping an intermediate release; a major upgrade starts only from the very latest
/// minor of the prior release; no major release is skipped. Released versions come from the list given
/// (the target's package index, or one an admin pastes): "consecutive" and "latest" mean in that list.
/// </summary>
public static class UpgradePath
{
    /// <summary>Whether one hop is allowed: null when it is, else the first rule it breaks.</summary>
    public static HopRefusal? Check(BackendAiReleases releases, BackendAiVersion from, BackendAiVersion to)
    {
        if (EndsRefusal(releases, from, to) is { } refusal)
        {
            return refusal;
        }

        HopRefusal Refuse(UpgradeRule rule, string reason) => new(from, to, rule, reason);

        if (from.Series == to.Series)
        {
            var next = releases.NextInSeries(from)!.Value;
            return next == to
                ? null
                : Refuse(UpgradeRule.MinorConsecutive, $"{from} → {to} skips {next}: minor upgrades go consecutively, never skipping an intermediate release.");
        }

        var nextSeries = releases.NextSeries(from.Series)!.Value;
        if (to.Series != nextSeries)
        {
            return Refuse(UpgradeRule.NoMajorSkipped, $"{from} → {to} skips the {nextSeries} release: no major release is skipped.");
        }

        var latest = releases.Latest(from.Series)!.Value;
        return from == latest
            ? null
            : Refuse(UpgradeRule.MajorFromLatestMinor, $"{from} → {to}: a major upgrade starts only from the very latest minor of the prior release ({latest}), not {from}.");
    }

    /// <summary>The rules about the two ends alone, shared by a hop and a whole plan: both released, and forward.</summary>
    private static HopRefusal? EndsRefusal(BackendAiReleases releases, BackendAiVersion from, BackendAiVersion to)
    {
        foreach (var v in new[] { from, to })
        {
            if (!releases.Contains(v))
            {
                return new(from, to, UpgradeRule.Released, $"{from} → {to}: {v} is not in the list of released versions.");
            }
        }

        return to > from
            ? null
            : new(from, to, UpgradeRule.Forward, to == from
                ? $"{from} → {to}: already at {to}."
                : $"{from} → {to} goes backwards: a downgrade is a rollback, not an upgrade path.");
    }

    /// <summary>The kind of an allowed hop.</summary>
    public static HopKind KindOf(BackendAiVersion from, BackendAiVersion to) =>
        from.Series == to.Series ? HopKind.Minor : HopKind.Major;

    /// <summary>Checks a whole chain, hop by hop: null when every hop is allowed, else the first refusal.</summary>
    public static HopRefusal? CheckChain(BackendAiReleases releases, IReadOnlyList<BackendAiVersion> chain)
    {
        for (var i = 0; i + 1 < chain.Count; i++)
        {
            if (Check(releases, chain[i], chain[i + 1]) is { } refusal)
            {
                return refusal;
            }
        }

        return null;
    }

    /// <summary>
    /// The shortest chain of allowed hops from the installed version to the wanted one: within the installed
    /// series one release at a time up to its latest, then into each following series, landing on an
    /// intermediate series' latest release (a major upgrade may land on any release of the next series) and
    /// on the wanted version in its own. Refused (with the rule) when no allowed chain exists.
    /// </summary>
    public static UpgradePlanResult Plan(BackendAiReleases releases, BackendAiVersion from, BackendAiVersion to)
    {
        if (EndsRefusal(releases, from, to) is { } refusal)
        {
            // Already at the wanted release: nothing to run.
            return to == from && refusal.Rule == UpgradeRule.Forward
                ? UpgradePlanResult.Planned(from, to, [])
                : UpgradePlanResult.Refused(refusal);
        }

        var hops = new List<UpgradeHop>();
        var current = from;
        while (current != to)
        {
            BackendAiVersion next;
            if (current.Series == to.Series)
            {
                next = releases.NextInSeries(current)!.Value;
            }
            else if (releases.Latest(current.Series)!.Value != current)
            {
                next = releases.NextInSeries(current)!.Value;
            }
            else
            {
                var series = releases.NextSeries(current.Series)!.Value;
                next = series == to.Series ? to : releases.Latest(series)!.Value;
            }

            hops.Add(new(current, next, KindOf(current, next)));
            current = next;
        }

        return UpgradePlanResult.Planned(from, to, hops);
    }
}

/// <summary>A planned chain of hops, or the refusal that stops it.</summary>
public sealed record UpgradePlanResult(BackendAiVersion From, BackendAiVersion To, IReadOnlyList<UpgradeHop> Hops, HopRefusal? Refusal)
{
    public bool IsAllowed => Refusal is null;

    public static UpgradePlanResult Planned(BackendAiVersion from, BackendAiVersion to, IReadOnlyList<UpgradeHop> hops) => new(from, to, hops, null);

    public static UpgradePlanResult Refused(HopRefusal refusal) => new(refusal.From, refusal.To, [], refusal);
}
