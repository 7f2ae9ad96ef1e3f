using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using UpgradeConsole.Web.Accounts;

namespace UpgradeConsole.Web.Persistence;

/// <summary>
/// The dashboard's own database. One model; a subclass per provider carries that provider's
/// migration set (<see cref="SqliteAppDbContext"/>, <see cref="PostgresAppDbContext"/>).
/// </summary>
public abstract class AppDbContext(DbContextOptions options) : IdentityDbContext<AppUser, IdentityRole, string>(options)
{
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

    public DbSet<Audit.AuditEvent> AuditEvents => Set<Audit.AuditEvent>();

    public DbSet<Targets.Target> Targets => Set<Targets.Target>();

    public DbSet<Fractal.PreflightRun> PreflightRuns => Set<Fractal.PreflightRun>();

    public DbSet<Runs.Run> Runs => Set<Runs.Run>();

    public DbSet<Runs.RunPhase> RunPhases => Set<Runs.RunPhase>();

    public DbSet<Runs.RunLogChunk> RunLogChunks => Set<Runs.RunLogChunk>();

    public DbSet<Api.ApiToken> ApiTokens => Set<Api.ApiToken>();

    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);
        builder.ApplyConfigurationsFromAssembly(typeof(AppDbContext).Assembly);
        SeedRoles(builder);
    }

    // Fixed ids and stamps: the seed is part of the migrations and must not change between builds.
    private static void SeedRoles(ModelBuilder builder) =>
        builder.Entity<IdentityRole>().HasData(
            Core.Accounts.Roles.All.Select(r => new IdentityRole
            {
                Id = "role-" + r.ToLowerInvariant(),
                Name = r,
                NormalizedName = r.ToUpperInvariant(),
                ConcurrencyStamp = "seed-" + r.ToLowerInvariant(),
            }));
}

/// <summary>The SQLite flavour of <see cref="AppDbContext"/> (the default; one file in the data directory).</summary>
public sealed class SqliteAppDbContext(DbContextOptions<SqliteAppDbContext> options) : AppDbContext(options);

/// <summary>The PostgreSQL flavour of <see cref="AppDbContext"/> (production; several nodes may share it).</summary>
public sealed class PostgresAppDbContext(DbContextOptions<PostgresAppDbContext> options) : AppDbContext(options);
