using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Security;

/// <summary>The data directory holds the database and the SSH sockets: private however it was made.</summary>
public sealed class PrivateDataDirectoryTests
{
    [Fact]
    public async Task APreCreatedOpenDataDirectory_AndItsDatabase_AreMadeOwnerOnly()
    {
        var data = Directory.CreateTempSubdirectory("uc-open-").FullName;
        try
        {
            // As an admin might have made it: mkdir with umask 022, and an old database copied in 0644.
            File.SetUnixFileMode(data, (UnixFileMode)Convert.ToInt32("755", 8));
            await using (var app = new UpgradeConsoleApplicationFactory(dataDirectory: data))
            {
                await app.CreateFirstAdminAsync();
            }

            var database = Path.Combine(data, "upgradeconsole.db");
            File.SetUnixFileMode(database, (UnixFileMode)Convert.ToInt32("644", 8));
            File.SetUnixFileMode(data, (UnixFileMode)Convert.ToInt32("755", 8));
            await using (var app = new UpgradeConsoleApplicationFactory(dataDirectory: data))
            {
                _ = app.Services;
                Assert.Equal("700", Mode(data));
                Assert.Equal("600", Mode(database));
                Assert.All(new List<string> { database + "-wal", database + "-shm" }.Where(File.Exists), f => Assert.Equal("600", Mode(f)));
            }
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static string Mode(string path) => Convert.ToString((int)File.GetUnixFileMode(path), 8);
}
