using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using UpgradeConsole.Web.Hosting;

namespace UpgradeConsole.Web.Persistence;

public enum DatabaseProvider
{
    Sqlite,
    PostgreSQL,
}

/// <summary>Which database the dashboard uses (<c>Database:*</c> and <c>ConnectionStrings:UpgradeConsole</c>).</summary>
public sealed class DatabaseOptions
{
    public const string Section = "Database";
    public const string ConnectionStringName = "UpgradeConsole";

    public DatabaseProvider Provider { get; set; } = DatabaseProvider.Sqlite;

    /// <summary>The resolved connection string (for SQLite, a file in the data directory unless configured).</summary>
    public string ConnectionString { get; set; } = "";
}

public static class PersistenceSetup
{
    public static WebApplicationBuilder AddPersistence(this WebApplicationBuilder builder)
    {
        var (dataDirectory, options) = builder.StorageSettings();
        builder.Services.AddSingleton(dataDirectory);
        builder.Services.AddSingleton(Options.Create(options));
        // Registered first, so the schema is current before the scheduler or any other service starts.
        builder.Services.AddHostedService<MigrateAtStart>();

        switch (options.Provider)
        {
            case DatabaseProvider.Sqlite:
                builder.Services.AddDbContext<AppDbContext, SqliteAppDbContext>(o => o.UseSqlite(options.ConnectionString).AddInterceptors(SqliteSynchronousNormal.Instance));
                break;
            case DatabaseProvider.PostgreSQL:
                builder.Services.AddDbContext<AppDbContext, PostgresAppDbContext>(o => o.UseNpgsql(options.ConnectionString));
                break;
            default:
                throw new InvalidOperationException($"Unknown database provider {options.Provider}.");
        }

        var kek = KeyEncryptionKey.Resolve(builder.Configuration, dataDirectory, options.Provider);
        builder.Services.AddSingleton(kek);
        builder.Services.AddDataProtection().SetApplicationName("UpgradeConsole");
        builder.Services.AddSingleton<IConfigureOptions<KeyManagementOptions>>(sp =>
            new ConfigureOptions<KeyManagementOptions>(o =>
                o.XmlRepository = new DatabaseXmlRepository(sp.GetRequiredService<IServiceScopeFactory>(), kek)));
        return builder;
    }

    /// <summary>The data directory and database settings, read once per builder and shared by every feature that needs them.</summary>
    public static (DataDirectory Data, DatabaseOptions Database) StorageSettings(this IHostApplicationBuilder builder)
    {
        const string key = "UpgradeConsole.StorageSettings";
        if (builder.Properties.TryGetValue(key, out var cached))
        {
            return ((DataDirectory, DatabaseOptions))cached;
        }

        var data = DataDirectory.FromConfiguration(builder.Configuration);
        var settings = (data, ResolveDatabaseOptions(builder.Configuration, data));
        builder.Properties[key] = settings;
        return settings;
    }

    /// <summary>Reads and checks the database settings; a mistake stops the start with a plain message.</summary>
    public static DatabaseOptions ResolveDatabaseOptions(IConfiguration configuration, DataDirectory dataDirectory)
    {
        var providerText = configuration[$"{DatabaseOptions.Section}:Provider"];
        var provider = DatabaseProvider.Sqlite;
        if (!string.IsNullOrWhiteSpace(providerText) && !Enum.TryParse(providerText, ignoreCase: true, out provider))
        {
            throw new StartupConfigurationException(
                $"Database:Provider is '{providerText}'; use 'Sqlite' (the default) or 'PostgreSQL'.");
        }

        var connectionString = configuration.GetConnectionString(DatabaseOptions.ConnectionStringName);
        if (provider == DatabaseProvider.PostgreSQL && string.IsNullOrWhiteSpace(connectionString))
        {
            throw new StartupConfigurationException(
                "Database:Provider is PostgreSQL but ConnectionStrings:UpgradeConsole is empty; set it to " +
                "'Host=...;Database=...;Username=...;Password=...'.");
        }

        if (provider == DatabaseProvider.Sqlite)
        {
            var sqlite = new SqliteConnectionStringBuilder(
                string.IsNullOrWhiteSpace(connectionString) ? "" : connectionString);
            if (string.IsNullOrEmpty(sqlite.DataSource))
            {
                sqlite.DataSource = dataDirectory.Combine("upgradeconsole.db");
            }

            sqlite.ForeignKeys = true;
            // Seconds a command waits on another writer (the scheduler shares the file).
            sqlite.DefaultTimeout = 30;
            connectionString = sqlite.ToString();
        }

        return new DatabaseOptions { Provider = provider, ConnectionString = connectionString! };
    }

    /// <summary>Applies pending migrations; on SQLite also switches the file to WAL so readers never block the writer.</summary>
    public static async Task MigrateDatabaseAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        await db.Database.MigrateAsync(cancellationToken);
        // Before anything reads the ring: it must open with the configured key-encryption key.
        await KeyRingSeal.CheckAndSealAsync(db, scope.ServiceProvider.GetRequiredService<KeyEncryptionKey>(), cancellationToken);
        if (db.Database.IsSqlite())
        {
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
            // SQLite creates the file with the process's umask (often 0644) and its -wal and -shm with the
            // file's own mode: owner-only, whatever the directory around it.
            var file = new SqliteConnectionStringBuilder(db.Database.GetConnectionString()).DataSource;
            foreach (var suffix in new[] { "", "-wal", "-shm" })
            {
                Hosting.DataDirectory.MakePrivateFile(file + suffix);
            }
        }
    }
}

/// <summary>
/// <c>PRAGMA synchronous=NORMAL</c> on every connection the dashboard opens (the setting is per
/// connection): in WAL mode a commit then needs no fsync of its own (the WAL is synced at checkpoints),
/// and the file can never be corrupted; a power cut (not a crash of the dashboard) may lose the last
/// commits. FULL cost a run's log writer an fsync per chunk: ¾ s of every million lines.
/// </summary>
internal sealed class SqliteSynchronousNormal : Microsoft.EntityFrameworkCore.Diagnostics.DbConnectionInterceptor
{
    public static readonly SqliteSynchronousNormal Instance = new();

    private const string Pragma = "PRAGMA synchronous=NORMAL;";

    public override void ConnectionOpened(System.Data.Common.DbConnection connection, Microsoft.EntityFrameworkCore.Diagnostics.ConnectionEndEventData eventData)
    {
        using var pragma = connection.CreateCommand();
        pragma.CommandText = Pragma;
        pragma.ExecuteNonQuery();
    }

    public override async Task ConnectionOpenedAsync(System.Data.Common.DbConnection connection, Microsoft.EntityFrameworkCore.Diagnostics.ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = Pragma;
        await pragma.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>Applies migrations when the dashboard starts (several nodes may start at once: EF Core takes a migration lock).</summary>
internal sealed class MigrateAtStart(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => services.MigrateDatabaseAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
