using Microsoft.Extensions.Configuration;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Web;

public sealed class HostingRulesTests
{
    [Theory]
    [InlineData("/admin/users", "/admin/users")]
    [InlineData("/runs?target=3", "/runs?target=3")]
    [InlineData("https://evil.example/", "/")]
    [InlineData("//evil.example/", "/")]
    [InlineData("/\\evil.example/", "/")]
    [InlineData("javascript:alert(1)", "/")]
    [InlineData("", "/")]
    [InlineData(null, "/")]
    public void SafeReturnUrl_OnlyKeepsLocalPaths(string? requested, string expected) =>
        Assert.Equal(expected, Login.SafeReturnUrl(requested));

    [Fact]
    public void DatabaseOptions_Default_IsSqliteFileInDataDirectory()
    {
        var (data, options) = Resolve(new() { ["UpgradeConsole:DataDirectory"] = TempDir() });
        Assert.Equal(DatabaseProvider.Sqlite, options.Provider);
        Assert.Contains(Path.Combine(data.Path, "upgradeconsole.db"), options.ConnectionString, StringComparison.Ordinal);
        Assert.Contains("Foreign Keys=True", options.ConnectionString, StringComparison.Ordinal);
    }

    [Fact]
    public void DatabaseOptions_UnknownProvider_IsRefusedWithTheChoices()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Resolve(new() { ["UpgradeConsole:DataDirectory"] = TempDir(), ["Database:Provider"] = "Oracle" }));
        Assert.Contains("'Sqlite' (the default) or 'PostgreSQL'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DatabaseOptions_PostgresWithoutConnectionString_IsRefused()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Resolve(new() { ["UpgradeConsole:DataDirectory"] = TempDir(), ["Database:Provider"] = "postgresql" }));
        Assert.Contains("ConnectionStrings:UpgradeConsole is empty", error.Message, StringComparison.Ordinal);
    }

    private static (DataDirectory, DatabaseOptions) Resolve(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var data = DataDirectory.FromConfiguration(configuration);
        return (data, PersistenceSetup.ResolveDatabaseOptions(configuration, data));
    }

    private static string TempDir() => Path.Combine(Path.GetTempPath(), "uc-opt-" + Guid.NewGuid().ToString("N"));
}
