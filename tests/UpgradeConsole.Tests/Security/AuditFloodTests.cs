using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Identity;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Api;

namespace UpgradeConsole.Tests.Security;

/// <summary>
/// Security finding 2: one Viewer's token must not be able to flood the append-only audit history, nor make every
/// verification walk a long chain. Reads are counted per token and window, writes stay one bounded event each, calls are
/// limited per token, and a non-Admin's verification checks only what is new since the last one.
/// </summary>
public sealed class AuditFloodTests : IAsyncLifetime
{
    private static readonly string LongQuery = "?q=" + new string('x', 7000);

    private readonly UpgradeConsoleApplicationFactory _app = new UpgradeConsoleApplicationFactory()
        .WithSetting("UpgradeConsole:Api:ReadAuditWindow", "00:00:02")
        .WithSetting("UpgradeConsole:Api:CallsPerMinutePerToken", "150");

    public async ValueTask InitializeAsync()
    {
        var admin = await _app.CreateFirstAdminAsync();
        await _app.CreateUserAsync(admin, "viewer@example.org", Roles.Viewer);
    }

    [Fact]
    public async Task AHundredReadsWithHugeQueries_BecomeOneBoundedEventPerWindow_NotAHundredBigOnes()
    {
        var ct = TestContext.Current.CancellationToken;
        using var viewer = await ClientAsync("viewer@example.org", Roles.Viewer);
        var before = (await _app.AuditEventsAsync()).Count;
        for (var i = 0; i < 100; i++)
        {
            using var response = await viewer.GetAsync("/api/v1/audit" + LongQuery, ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await Eventually.TrueAsync(async () => (await _app.AuditEventsAsync()).Where(e => e.Action == "api.reads").Sum(Calls) >= 100, TimeSpan.FromSeconds(30));
        var added = (await _app.AuditEventsAsync()).Skip(before).ToList();
        Assert.DoesNotContain(added, e => e.Action == "api.call");
        var reads = added.Where(e => e.Action == "api.reads").ToList();
        Assert.Equal(100, reads.Sum(Calls));
        Assert.InRange(reads.Count, 1, 10);
        Assert.All(reads, e => Assert.Contains("\"/api/v1/audit\":", e.Details, StringComparison.Ordinal));
        Assert.All(added, e => Assert.True(e.Details.Length < 2000, $"{e.Action} stores {e.Details.Length} characters"));
    }

    [Fact]
    public async Task EveryWrite_IsStillOneEvent_WithItsQueryCut()
    {
        var ct = TestContext.Current.CancellationToken;
        using var viewer = await ClientAsync("viewer@example.org", Roles.Viewer);
        for (var i = 0; i < 3; i++)
        {
            using var refused = await viewer.PostAsJsonAsync("/api/v1/targets" + LongQuery, new { }, ct);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        var calls = (await _app.AuditEventsAsync()).Where(e => e.Action == "api.call").ToList();
        Assert.Equal(3, calls.Count);
        Assert.All(calls, e =>
        {
            var query = JsonDocument.Parse(e.Details).RootElement.GetProperty("query").GetString()!;
            Assert.True(query.Length < 400, $"the query kept {query.Length} characters");
            Assert.EndsWith("more characters)", query, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task ATokenOverItsCallsPerMinute_Gets429WithRetryAfter_AnotherTokenDoesNot()
    {
        var ct = TestContext.Current.CancellationToken;
        using var greedy = await ClientAsync("viewer@example.org", Roles.Viewer);
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 152; i++)
        {
            using var response = await greedy.GetAsync("/api/v1/runbooks", ct);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, "no Retry-After");
                Assert.Contains("too many calls", await response.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
            }
        }

        Assert.All(statuses.Take(150), s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.All(statuses.Skip(150), s => Assert.Equal(HttpStatusCode.TooManyRequests, s));
        using var other = await ClientAsync(UpgradeConsoleApplicationFactory.AdminEmail, Roles.Admin);
        Assert.Equal(HttpStatusCode.OK, (await other.GetAsync("/api/v1/runbooks", ct)).StatusCode);
    }

    [Fact]
    public async Task AViewersVerification_ChecksOnlyWhatIsNew_ButStillCatchesAChangedCheckpointOrNewEvent_AndAnAdminWalksItAll()
    {
        var ct = TestContext.Current.CancellationToken;
        using var viewer = await ClientAsync("viewer@example.org", Roles.Viewer);
        using var admin = await ClientAsync(UpgradeConsoleApplicationFactory.AdminEmail, Roles.Admin);

        var first = await VerifyAsync(viewer, "");
        Assert.True(first.GetProperty("holds").GetBoolean());
        var events = first.GetProperty("events").GetInt64();

        // Ten more events (refused writes), then the Viewer checks again: only those (and the checkpoint) are read.
        for (var i = 0; i < 10; i++)
        {
            using var write = await viewer.PostAsJsonAsync("/api/v1/targets", new { }, ct);
        }

        var second = await VerifyAsync(viewer, "");
        Assert.True(second.GetProperty("holds").GetBoolean());
        Assert.InRange(second.GetProperty("walked").GetInt64(), 11, 13);
        Assert.True(second.GetProperty("events").GetInt64() >= events + 11);
        Assert.False(second.GetProperty("full").GetBoolean());
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.PostAsync("/api/v1/audit/verify?full=true", null, ct)).StatusCode);

        // Someone with the database's powers edits an old event: only a full walk sees it; the Admin's check is one.
        var old = 2;
        await TamperAsync($"UPDATE \"AuditEvents\" SET \"Actor\" = 'mallory' WHERE \"Id\" = {old}");
        Assert.True((await VerifyAsync(viewer, "")).GetProperty("holds").GetBoolean());
        var full = await VerifyAsync(admin, "");
        Assert.False(full.GetProperty("holds").GetBoolean());
        Assert.Equal(old, full.GetProperty("brokenAt").GetInt64());

        // An edit of the checkpoint itself, or of an event after it, breaks even the Viewer's check.
        var after = await VerifyAsync(viewer, "");
        var anchor = after.GetProperty("events").GetInt64();
        await TamperAsync($"UPDATE \"AuditEvents\" SET \"Details\" = '{{}}' WHERE \"Id\" = {anchor}");
        var broken = await VerifyAsync(viewer, "");
        Assert.False(broken.GetProperty("holds").GetBoolean());
        Assert.Equal(anchor, broken.GetProperty("brokenAt").GetInt64());
    }

    private static async Task<JsonElement> VerifyAsync(HttpClient client, string query)
    {
        using var response = await client.PostAsync("/api/v1/audit/verify" + query, null, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
    }

    private async Task TamperAsync(string sql)
    {
        await using var db = new SqliteConnection($"Data Source={Path.Combine(_app.DataDirectory, "upgradeconsole.db")};Pooling=False");
        await db.OpenAsync();
        await using var command = db.CreateCommand();
        command.CommandText = "DROP TRIGGER IF EXISTS audit_events_no_update; " + sql;
        await command.ExecuteNonQueryAsync();
    }

    private static long Calls(UpgradeConsole.Web.Audit.AuditEvent e) =>
        JsonDocument.Parse(e.Details).RootElement.GetProperty("calls").GetInt64();

    private async Task<HttpClient> ClientAsync(string email, string role)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var user = (await scope.ServiceProvider.GetRequiredService<UserManager<AppUser>>().FindByEmailAsync(email))!;
        var owner = new ClaimsPrincipal(new ClaimsIdentity([new(ClaimTypes.NameIdentifier, user.Id), new(ClaimTypes.Name, email), new(ClaimTypes.Role, role)], "test"));
        var created = await scope.ServiceProvider.GetRequiredService<ApiTokenService>().CreateAsync(owner, "flood " + Guid.NewGuid().ToString("N")[..6], role, 1, TestContext.Current.CancellationToken);
        Assert.True(created.Succeeded);
        var client = _app.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", created.Created!.Secret);
        return client;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
