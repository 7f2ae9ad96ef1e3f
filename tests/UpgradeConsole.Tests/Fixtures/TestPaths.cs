namespace UpgradeConsole.Tests.Fixtures;

public static class TestPaths
{
    /// <summary>The repository root (the folder with UpgradeConsole.sln).</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>Where tests leave artefacts (screenshots): TestResults/ at the repository root, or $UC_TEST_RESULTS.</summary>
    public static string ResultsDirectory =>
        Environment.GetEnvironmentVariable("UC_TEST_RESULTS") is { Length: > 0 } configured
            ? configured
            : Path.Combine(RepositoryRoot, "TestResults");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "UpgradeConsole.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? AppContext.BaseDirectory;
    }
}
