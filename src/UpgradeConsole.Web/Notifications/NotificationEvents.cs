namespace UpgradeConsole.Web.Notifications;

/// <summary>What a notification tells about; a channel or a person's preference holds a set of these (stored as a number).</summary>
[Flags]
public enum NotificationEvents
{
    None = 0,
    RunPlanned = 1,
    WaitingForApproval = 2,
    RunStarted = 4,
    PhaseFailed = 8,
    NeedsAttention = 16,
    WaitingForChecklist = 32,
    RunSucceeded = 64,
    RolledBack = 128,
    HostKeyChanged = 256,
    PreflightNewlyFailing = 512,
    All = 1023,
}

/// <summary>The event kinds by the names the API, the webhook body and the pages use.</summary>
public static class NotificationKinds
{
    public static readonly IReadOnlyList<(NotificationEvents Event, string Name, string Title)> All =
    [
        (NotificationEvents.RunPlanned, "run.planned", "Run planned"),
        (NotificationEvents.WaitingForApproval, "run.waiting-for-approval", "Waiting for approval"),
        (NotificationEvents.RunStarted, "run.started", "Run started"),
        (NotificationEvents.PhaseFailed, "run.phase-failed", "Phase failed"),
        (NotificationEvents.NeedsAttention, "run.needs-attention", "Needs attention"),
        (NotificationEvents.WaitingForChecklist, "run.waiting-for-checklist", "Waiting for the checklist"),
        (NotificationEvents.RunSucceeded, "run.succeeded", "Run succeeded"),
        (NotificationEvents.RolledBack, "run.rolled-back", "Rolled back"),
        (NotificationEvents.HostKeyChanged, "target.host-key-changed", "Host key changed"),
        (NotificationEvents.PreflightNewlyFailing, "preflight.newly-failing", "Preflight newly failing"),
    ];

    public static string Name(NotificationEvents kind) => All.First(k => k.Event == kind).Name;

    public static string Title(NotificationEvents kind) => All.First(k => k.Event == kind).Title;

    public static IReadOnlyList<string> Names(NotificationEvents set) => All.Where(k => set.HasFlag(k.Event)).Select(k => k.Name).ToList();

    /// <summary>The set named by <paramref name="names"/>, or the first unknown name.</summary>
    public static (NotificationEvents Set, string? Unknown) Parse(IEnumerable<string>? names)
    {
        var set = NotificationEvents.None;
        foreach (var name in names ?? [])
        {
            var kind = All.FirstOrDefault(k => string.Equals(k.Name, name?.Trim(), StringComparison.OrdinalIgnoreCase));
            if (kind.Name is null)
            {
                return (set, name);
            }

            set |= kind.Event;
        }

        return (set, null);
    }
}
