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
    public void ADataDirectoryTooLongForItsSockets_IsRefusedAtStart_AndNotCreated()
    {
        var parent = TempDir();
        var fits = Path.Combine(parent, new string('f', DataDirectory.MaxPathBytes - parent.Length - 1));
        var tooLong = Path.Combine(parent, new string('l', DataDirectory.MaxPathBytes - parent.Length));
        Assert.Equal(DataDirectory.MaxPathBytes, fits.Length);
        Assert.Equal(fits, Resolve(new() { ["UpgradeConsole:DataDirectory"] = fits }).Item1.Path);

        var refused = Assert.Throws<StartupConfigurationException>(() => Resolve(new() { ["UpgradeConsole:DataDirectory"] = tooLong }));
        Assert.Contains($"({DataDirectory.MaxPathBytes + 1} bytes)", refused.Message, StringComparison.Ordinal);
        Assert.Contains("/var/lib/upgradeconsole", refused.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(tooLong));

        // The limit is what a socket needs: the longest one (a database forward) just fits under the longest directory.
        var socket = Path.Combine(fits, "ssh", int.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture), "pg-0123abcd", ".s.PGSQL.65535");
        Assert.Equal(107, System.Text.Encoding.UTF8.GetByteCount(socket));
    }

    [Fact]
    public void DatabaseOptions_UnknownProvider_IsRefusedWithTheChoices()
    {
        var error = Assert.Throws<StartupConfigurationException>(() => Resolve(new() { ["UpgradeConsole:DataDirectory"] = TempDir(), ["Database:Provider"] = "Oracle" }));
        Assert.Contains("'Sqlite' (the default) or 'PostgreSQL'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DatabaseOptions_PostgresWithoutConnectionString_IsRefused()
    {
        var error = Assert.Throws<StartupConfigurationException>(() => Resolve(new() { ["UpgradeConsole:DataDirectory"] = TempDir(), ["Database:Provider"] = "postgresql" }));
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
