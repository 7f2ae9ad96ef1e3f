using System.Net;
using System.Text.Json;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Health;

/// <summary><c>/healthz</c> answers without login: 200 while the database answers, 503 while it does not.</summary>
public sealed class HealthEndpointTests
{
    [Fact]
    public async Task Healthz_OnSqlite_IsHealthyWithoutLogin()
    {
        await using var app = new UpgradeConsoleApplicationFactory();
        var response = await app.CreateBrowserLikeClient().GetAsync("/healthz");
        var body = await response.ExpectOkAsync();
        using var json = JsonDocument.Parse(body);
        Assert.Equal("Healthy", json.RootElement.GetProperty("status").GetString());
        Assert.Equal("Healthy", json.RootElement.GetProperty("checks").GetProperty("database").GetProperty("status").GetString());
    }

    [Fact]
    public async Task HealthzReady_OnSqlite_ChecksTheDatabaseAndTheJobStorage_WithoutLogin()
    {
        await using var app = new UpgradeConsoleApplicationFactory();
        var body = await (await app.CreateBrowserLikeClient().GetAsync("/healthz/ready")).ExpectOkAsync();
        using var json = JsonDocument.Parse(body);
        Assert.Equal("Healthy", json.RootElement.GetProperty("checks").GetProperty("database").GetProperty("status").GetString());
        Assert.Equal("Healthy", json.RootElement.GetProperty("checks").GetProperty("jobs").GetProperty("status").GetString());
        // Liveness stays what load balancers know: the database only.
        using var live = JsonDocument.Parse(await (await app.CreateBrowserLikeClient().GetAsync("/healthz")).ExpectOkAsync());
        Assert.False(live.RootElement.GetProperty("checks").TryGetProperty("jobs", out _));
    }

    [Fact]
    public async Task Healthz_WhenPostgresStops_Answers503_AndRecoversWhenItIsBack()
    {
        // A server of its own: stopping the shared one would break other tests.
        var postgres = new PostgresServer();
        await postgres.InitializeAsync();
        try
        {
            await using var app = new UpgradeConsoleApplicationFactory(DatabaseProvider.PostgreSQL, await postgres.CreateDatabaseAsync());
            var client = app.CreateBrowserLikeClient();
            await (await client.GetAsync("/healthz")).ExpectOkAsync();

            await postgres.StopAsync();
            var down = await client.GetAsync("/healthz");
            var downBody = await down.Content.ReadAsStringAsync();
            Assert.True(down.StatusCode == HttpStatusCode.ServiceUnavailable, downBody);
            Assert.Contains("\"Unhealthy\"", downBody, StringComparison.Ordinal);
            Assert.DoesNotContain(postgres.Password, downBody, StringComparison.Ordinal);
            // Readiness: the job storage (Hangfire's tables on the same server) is down too.
            var notReady = await client.GetAsync("/healthz/ready");
            var notReadyBody = await notReady.Content.ReadAsStringAsync();
            Assert.True(notReady.StatusCode == HttpStatusCode.ServiceUnavailable, notReadyBody);
            Assert.Equal("Unhealthy", JsonDocument.Parse(notReadyBody).RootElement.GetProperty("checks").GetProperty("jobs").GetProperty("status").GetString());
            Assert.DoesNotContain(postgres.Password, notReadyBody, StringComparison.Ordinal);

            await postgres.StartAsync();
            HttpStatusCode status = default;
            for (var attempt = 0; attempt < 20 && status != HttpStatusCode.OK; attempt++)
            {
                status = (await client.GetAsync("/healthz")).StatusCode;
                if (status != HttpStatusCode.OK)
                {
                    await Task.Delay(250);
                }
            }

            Assert.Equal(HttpStatusCode.OK, status);
        }
        finally
        {
            await postgres.DisposeAsync();
        }
    }
}
