namespace UpgradeConsole.Web.Runs;

/// <summary>A phase the log viewer filters by: its index (the lines' phase number) and its title.</summary>
public sealed record LogPhase(int Index, string Title);
