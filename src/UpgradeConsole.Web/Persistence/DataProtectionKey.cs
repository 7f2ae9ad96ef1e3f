using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace UpgradeConsole.Web.Persistence;

/// <summary>One ASP.NET Core Data Protection key ring element, stored so every node shares the ring.</summary>
public sealed class DataProtectionKey
{
    public int Id { get; set; }

    public string FriendlyName { get; set; } = "";

    public string Xml { get; set; } = "";
}

internal sealed class DataProtectionKeyConfiguration : IEntityTypeConfiguration<DataProtectionKey>
{
    public void Configure(EntityTypeBuilder<DataProtectionKey> builder)
    {
        builder.ToTable("DataProtectionKeys");
        builder.Property(k => k.FriendlyName).HasMaxLength(200);
    }
}

/// <summary>
/// Keeps the Data Protection key ring in the dashboard's database: cookies and encrypted
/// target secrets then survive restarts, and nodes sharing PostgreSQL share the ring. Every entry is
/// sealed with the key-encryption key, which is kept outside the database.
/// </summary>
internal sealed class DatabaseXmlRepository(IServiceScopeFactory scopes, KeyEncryptionKey kek) : IXmlRepository
{
    public IReadOnlyCollection<XElement> GetAllElements()
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        return db.DataProtectionKeys.AsNoTracking().OrderBy(k => k.Id)
            .AsEnumerable().Select(k => KeyRingSeal.Open(k.Xml, kek)).ToList();
    }

    public void StoreElement(XElement element, string friendlyName)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        db.DataProtectionKeys.Add(new DataProtectionKey
        {
            FriendlyName = friendlyName,
            Xml = KeyRingSeal.Seal(element, kek),
        });
        db.SaveChanges();
    }
}
