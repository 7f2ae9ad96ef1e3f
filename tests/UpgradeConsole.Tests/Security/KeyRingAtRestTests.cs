using Microsoft.AspNetCore.DataProtection;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using Microsoft.Extensions.Configuration;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Security;

/// <summary>
/// The key ring that protects cookies and the SSH keys admins store is sealed with a key-encryption
/// key kept outside the database: a copy of the database alone gives up nothing, and the dashboard
/// refuses to start on it; with the key (backed up separately) everything opens again.
/// </summary>
public sealed class KeyRingAtRestTests(SshServer ssh)
{
    private const string Purpose = "UpgradeConsole.Targets.PrivateKey.v1";

    [Fact]
    public async Task ADatabaseCopyAlone_DecryptsNothing_AndWithTheKeyEncryptionKeyEverythingOpens()
    {
        var ct = TestContext.Current.CancellationToken;
        var original = Directory.CreateTempSubdirectory("uc-ring-a-").FullName;
        var copy = Directory.CreateTempSubdirectory("uc-ring-b-").FullName;
        try
        {
            await using (var app = new UpgradeConsoleApplicationFactory(dataDirectory: original))
            {
                await app.CreateFirstAdminAsync();
                await app.AddTargetAsync(new()
                {
                    ["Name"] = "ring",
                    ["Host"] = ssh.Host,
                    ["Port"] = ssh.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["SshUser"] = ssh.User,
                    ["PrivateKey"] = ssh.ClientKey,
                    ["WorkingDirectory"] = "/srv/fractal",
                });
            }

            Assert.Equal("600", Convert.ToString((int)File.GetUnixFileMode(Path.Combine(original, "keyring.kek")), 8));
            var database = Path.Combine(original, "upgradeconsole.db");
            string stored;
            await using (var db = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False"))
            {
                await db.OpenAsync(ct);
                await using var keys = new SqliteCommand("SELECT Xml FROM DataProtectionKeys", db);
                await using var reader = await keys.ExecuteReaderAsync(ct);
                var rows = 0;
                while (await reader.ReadAsync(ct))
                {
                    rows++;
                    var xml = reader.GetString(0);
                    Assert.StartsWith("<sealedKeyRingEntry", xml, StringComparison.Ordinal);
                    Assert.DoesNotContain("masterKey", xml, StringComparison.Ordinal);
                }

                Assert.True(rows > 0);
                await using var target = new SqliteCommand("SELECT ProtectedPrivateKey FROM Targets WHERE Name = 'ring'", db);
                stored = (string)(await target.ExecuteScalarAsync(ct))!;
            }

            // Someone walks away with the database file (and its WAL), not the key-encryption key.
            foreach (var file in Directory.GetFiles(original, "upgradeconsole.db*"))
            {
                File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
            }

            // Even with a key-encryption key of their own, the ring does not open, and the dashboard says why in one line.
            var refused = await CliAsync(["migrate"], copy);
            Assert.Equal(1, refused.ExitCode);
            Assert.StartsWith("UpgradeConsole cannot start: The key ring in the database is sealed with key-encryption key", refused.StandardError, StringComparison.Ordinal);

            // The admin restores the key-encryption key from its separate backup: the stored SSH key opens.
            File.Copy(Path.Combine(original, "keyring.kek"), Path.Combine(copy, "keyring.kek"), overwrite: true);
            await using (var restored = new UpgradeConsoleApplicationFactory(dataDirectory: copy))
            {
                var protector = restored.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector(Purpose);
                Assert.Equal(ssh.ClientKey.Trim(), protector.Unprotect(stored).Trim());
            }
        }
        finally
        {
            Directory.Delete(original, recursive: true);
            Directory.Delete(copy, recursive: true);
        }
    }

    [Fact]
    public async Task AKeyRingStoredBeforeItWasSealed_IsSealedAtTheNextStart()
    {
        var ct = TestContext.Current.CancellationToken;
        var data = Directory.CreateTempSubdirectory("uc-ring-old-").FullName;
        try
        {
            await using (var app = new UpgradeConsoleApplicationFactory(dataDirectory: data))
            {
                await app.CreateFirstAdminAsync();
            }

            // As an older dashboard left it: the same entries, in plain XML.
            var configuration = new ConfigurationBuilder()
                .AddInMemoryCollection(new Dictionary<string, string?> { ["UpgradeConsole:DataDirectory"] = data }).Build();
            var kek = KeyEncryptionKey.Resolve(configuration, UpgradeConsole.Web.Hosting.DataDirectory.FromConfiguration(configuration), DatabaseProvider.Sqlite);
            var connection = $"Data Source={Path.Combine(data, "upgradeconsole.db")};Pooling=False";
            await ExecuteEachRowAsync(connection, xml => KeyRingSeal.Open(xml, kek).ToString(System.Xml.Linq.SaveOptions.DisableFormatting), ct);
            Assert.All(await RowsAsync(connection, ct), xml => Assert.StartsWith("<key ", xml, StringComparison.Ordinal));

            var migrated = await CliAsync(["migrate"], data);
            Assert.True(migrated.ExitCode == 0, migrated.StandardError);
            Assert.All(await RowsAsync(connection, ct), xml => Assert.StartsWith("<sealedKeyRingEntry", xml, StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static async Task<List<string>> RowsAsync(string connection, CancellationToken ct)
    {
        await using var db = new SqliteConnection(connection);
        await db.OpenAsync(ct);
        await using var select = new SqliteCommand("SELECT Xml FROM DataProtectionKeys ORDER BY Id", db);
        await using var reader = await select.ExecuteReaderAsync(ct);
        var rows = new List<string>();
        while (await reader.ReadAsync(ct))
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }

    private static async Task ExecuteEachRowAsync(string connection, Func<string, string> change, CancellationToken ct)
    {
        await using var db = new SqliteConnection(connection);
        await db.OpenAsync(ct);
        var rows = new List<(long Id, string Xml)>();
        await using (var select = new SqliteCommand("SELECT Id, Xml FROM DataProtectionKeys", db))
        await using (var reader = await select.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                rows.Add((reader.GetInt64(0), reader.GetString(1)));
            }
        }

        foreach (var (id, xml) in rows)
        {
            await using var update = new SqliteCommand("UPDATE DataProtectionKeys SET Xml = $xml WHERE Id = $id", db);
            update.Parameters.AddWithValue("$xml", change(xml));
            update.Parameters.AddWithValue("$id", id);
            await update.ExecuteNonQueryAsync(ct);
        }
    }

    [Fact]
    public async Task PostgreSqlWithoutAKeyEncryptionKey_RefusesToStart_SayingWhatToSet()
    {
        var data = Directory.CreateTempSubdirectory("uc-ring-pg-").FullName;
        try
        {
            var result = await CliAsync(["migrate"], data, new() { ["Database__Provider"] = "PostgreSQL", ["ConnectionStrings__UpgradeConsole"] = "Host=127.0.0.1;Database=none;Username=none" });
            Assert.Equal(1, result.ExitCode);
            Assert.StartsWith("UpgradeConsole cannot start: On PostgreSQL the key ring", result.StandardError, StringComparison.Ordinal);
            Assert.Contains("UpgradeConsole__KeyEncryptionKey", result.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static Task<ProcessRunner.Result> CliAsync(string[] args, string dataDirectory, Dictionary<string, string?>? extra = null)
    {
        var environment = new Dictionary<string, string?>
        {
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["UpgradeConsole__DataDirectory"] = dataDirectory,
        };
        foreach (var (key, value) in extra ?? [])
        {
            environment[key] = value;
        }

        return ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"), .. args], environment: environment, workingDirectory: AppContext.BaseDirectory, check: false);
    }}
