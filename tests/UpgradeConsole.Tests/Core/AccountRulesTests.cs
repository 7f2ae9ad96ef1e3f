using UpgradeConsole.Core.Accounts;

namespace UpgradeConsole.Tests.Core;

public sealed class AccountRulesTests
{
    [Theory]
    [InlineData("admin", "Admin")]
    [InlineData(" OPERATOR ", "Operator")]
    [InlineData("Viewer", "Viewer")]
    [InlineData("root", null)]
    [InlineData("", null)]
    [InlineData(null, null)]
    public void Normalize_TypedRole_ReturnsCanonicalOrNull(string? typed, string? expected) =>
        Assert.Equal(expected, Roles.Normalize(typed));

    [Fact]
    public void Rank_OrdersRolesByPrivilege()
    {
        Assert.True(Roles.Rank(Roles.Admin) > Roles.Rank(Roles.Operator));
        Assert.True(Roles.Rank(Roles.Operator) > Roles.Rank(Roles.Viewer));
        Assert.Equal(0, Roles.Rank("Superuser"));
    }

    [Fact]
    public void NewPassword_IsLongRandomAndReadable()
    {
        var passwords = Enumerable.Range(0, 200).Select(_ => PasswordGenerator.NewPassword()).ToList();
        Assert.All(passwords, p => Assert.Equal(20, p.Length));
        Assert.All(passwords, p => Assert.DoesNotMatch("[0O1lI]", p));
        Assert.Equal(passwords.Count, passwords.Distinct().Count());
        Assert.Throws<ArgumentOutOfRangeException>(() => PasswordGenerator.NewPassword(8));
    }

    [Fact]
    public void NewToken_IsUrlSafeAndCarries256Bits()
    {
        var token = PasswordGenerator.NewToken();
        Assert.Matches("^[A-Za-z0-9_-]{43}$", token);
        Assert.NotEqual(token, PasswordGenerator.NewToken());
    }
}
