using UpgradeConsole.Core.Fractal;

namespace UpgradeConsole.Core.Runbooks;

/// <summary>Preflight checks every product's preflight has, whatever the product: the dashboard's own.</summary>
public static class CommonChecks
{
    /// <summary>No other run is planned or running on the target (the database enforces it too).</summary>
    public const string ActiveRun = "runs.active";

    /// <summary>The target answered and could be read; when it fails it is the only check.</summary>
    public const string TargetReachable = "target.reachable";

    /// <summary>A passing rehearsal newer than the target asks for (issue 18), for every product that can rehearse.</summary>
    public const string RecentRehearsalId = "rehearsal.recent";

    /// <summary>
    /// Issue 18: a target may ask for a passing rehearsal newer than N days before a run; off by default (then it
    /// passes and says so). Days counted from the rehearsal's end to the preflight.
    /// </summary>
    public static CheckResult RecentRehearsal(int targetId, TimeSpan? requiredWithin, string? latest, DateTimeOffset? latestEndedAt, DateTimeOffset checkedAt)
    {
        var fix = $"/targets/{targetId}/plan";
        if (requiredWithin is not { } within)
        {
            return new(RecentRehearsalId, RecentRehearsalTitle, CheckStatus.Pass, "This target does not ask for one before a run"
                + (latestEndedAt is { } at ? $" (the latest passing rehearsal ended {Days(checkedAt - at)} ago)." : "."));
        }

        var asked = $"This target asks for a passing rehearsal newer than {Days(within)}";
        if (latest is not { } which || latestEndedAt is not { } ended)
        {
            return new(RecentRehearsalId, RecentRehearsalTitle, CheckStatus.Fail, asked + "; it has none. Rehearse the upgrade from the plan page first.", fix, "Rehearse");
        }

        var age = checkedAt - ended;
        return age <= within
            ? new(RecentRehearsalId, RecentRehearsalTitle, CheckStatus.Pass, $"{asked}: {which} passed {Days(age)} ago.")
            : new(RecentRehearsalId, RecentRehearsalTitle, CheckStatus.Fail, $"{asked}; the latest, {which}, passed {Days(age)} ago. Rehearse again first.", fix, "Rehearse");
    }

    /// <summary>
    /// The same check for a product whose runbooks do not rehearse (<paramref name="product"/>), on a target that asks for a
    /// rehearsal anyway (stored before the target form refused it): nothing can meet it, so it fails and says to clear it.
    /// </summary>
    public static CheckResult RecentRehearsalImpossible(int targetId, string product) =>
        new(RecentRehearsalId, RecentRehearsalTitle, CheckStatus.Fail,
            $"This target asks for a passing rehearsal before a run, but {product} runbooks do not rehearse. Clear the setting on the target's edit page.",
            $"/targets/{targetId}/edit", "Edit the target");

    private const string RecentRehearsalTitle = "A recent passing rehearsal";

    private static string Days(TimeSpan span) => span.TotalDays >= 1
        ? span.TotalDays.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture) + " days"
        : span.TotalHours.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture) + " hours";
}
