using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using UpgradeConsole.Tests.Fixtures;
using UpgradeConsole.Web.Persistence;
using UpgradeConsole.Web.Runs;

namespace UpgradeConsole.Tests.Api;

/// <summary>
/// The API's targets (create, read without secrets, pin on the real sshd, edit with a version guard)
/// and runs (status, text log with ?after, the event stream resuming from Last-Event-ID), and its
/// problem details: 400 per field, 404, 409 for an active run and for stale versions.
/// </summary>
public sealed class ApiRunsAndTargetsTests(SshServer ssh) : IAsyncLifetime
{
    private readonly UpgradeConsoleApplicationFactory _app = new();
    private HttpClient _admin = default!;
    private HttpClient _operator = default!;

    public async ValueTask InitializeAsync()
    {
        _app.ServeOverKestrel();
        _admin = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, await _app.SignedInEmailAsync("Admin"), "admin script", "Admin"));
        _operator = ApiTokens.Client(_app.BaseUrl, await ApiTokens.CreateAsync(_app, await _app.SignedInEmailAsync("Operator"), "operator script", "Operator"));
    }

    [Fact]
    public async Task AnAdminScriptAddsATarget_PinsItsHostKey_AndEditsIt()
    {
        var ct = TestContext.Current.CancellationToken;
        // Bad input: every offending field named, nothing stored.
        using var invalid = await _admin.PostAsJsonAsync("/api/v1/targets", new { name = "x", host = "no such host!", port = 22, sshUser = "-rf", workingDirectory = "relative/dir", serverUrl = "ftp://x" }, ct);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        var errors = (await invalid.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("errors");
        foreach (var field in new[] { "host", "sshUser", "workingDirectory", "serverUrl" })
        {
            Assert.True(errors.TryGetProperty(field, out _), $"no error for {field}: {errors}");
        }

        Assert.Empty((await _admin.GetFromJsonAsync<JsonElement>("/api/v1/targets", ct)).EnumerateArray());

        // Bodies that are not the right JSON at all: a problem too, never an HTML page.
        foreach (var bad in new[] { "{\"port\": \"twenty-two\"}", "{not json", "[]", "" })
        {
            using var content = new StringContent(bad, Encoding.UTF8, "application/json");
            using var response = await _admin.PostAsync("/api/v1/targets", content, ct);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{bad}: {(int)response.StatusCode}");
            Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json", $"{bad}: {response.Content.Headers.ContentType} {await response.Content.ReadAsStringAsync(ct)}");
        }

        var body = new Dictionary<string, object?>
        {
            ["name"] = "lab-fractal",
            ["host"] = ssh.Host,
            ["port"] = ssh.Port,
            ["sshUser"] = ssh.User,
            ["authMethod"] = "StoredKey",
            ["privateKey"] = ssh.ClientKey,
            ["workingDirectory"] = "/srv/fractal",
        };
        using var created = await _admin.PostAsJsonAsync("/api/v1/targets", body, ct);
        var createdText = await created.Content.ReadAsStringAsync(ct);
        Assert.True(created.StatusCode == HttpStatusCode.Created, createdText);
        Assert.DoesNotContain("PRIVATE KEY", createdText, StringComparison.Ordinal);
        var target = JsonDocument.Parse(createdText).RootElement;
        var id = target.GetProperty("id").GetInt32();
        Assert.Equal($"/api/v1/targets/{id}", created.Headers.Location?.OriginalString);
        Assert.True(target.GetProperty("hasStoredKey").GetBoolean());
        Assert.Equal("Unpinned", target.GetProperty("hostKey").GetProperty("state").GetString());

        // The same name again: a conflict with what exists.
        using var again = await _admin.PostAsJsonAsync("/api/v1/targets", body, ct);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);

        // Pin: a fingerprint the host does not present is refused; the real one is pinned.
        using var wrong = await _admin.PostAsJsonAsync($"/api/v1/targets/{id}/pin", new { fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, ct);
        Assert.Equal(HttpStatusCode.Conflict, wrong.StatusCode);
        var scanned = await _admin.GetFromJsonAsync<JsonElement>($"/api/v1/targets/{id}/host-keys", ct);
        var fingerprint = await ssh.HostKeyFingerprintAsync();
        Assert.Contains(scanned.EnumerateArray(), k => k.GetProperty("fingerprint").GetString() == fingerprint);
        using var pinned = await _admin.PostAsJsonAsync($"/api/v1/targets/{id}/pin", new { fingerprint }, ct);
        var pinnedTarget = await pinned.Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.Equal(HttpStatusCode.OK, pinned.StatusCode);
        Assert.Equal("Pinned", pinnedTarget.GetProperty("hostKey").GetProperty("state").GetString());
        Assert.Equal(fingerprint, pinnedTarget.GetProperty("hostKey").GetProperty("fingerprint").GetString());

        // Edit with the version read; the same stale version a second time is a 409, not an overwrite.
        var version = pinnedTarget.GetProperty("version").GetString();
        body["version"] = version;
        body["privateKey"] = null;
        body["requireApproval"] = true;
        using var edited = await _admin.PutAsJsonAsync($"/api/v1/targets/{id}", body, ct);
        Assert.Equal(HttpStatusCode.OK, edited.StatusCode);
        var after = await edited.Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.True(after.GetProperty("requireApproval").GetBoolean());
        Assert.True(after.GetProperty("hasStoredKey").GetBoolean());
        Assert.Equal("Pinned", after.GetProperty("hostKey").GetProperty("state").GetString());
        body["requireApproval"] = false;
        using var stale = await _admin.PutAsJsonAsync($"/api/v1/targets/{id}", body, ct);
        Assert.Equal(HttpStatusCode.Conflict, stale.StatusCode);
        Assert.Contains("changed this target", (await stale.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("detail").GetString(), StringComparison.Ordinal);

        // An Operator token reads but does not edit.
        Assert.Equal(HttpStatusCode.OK, (await _operator.GetAsync($"/api/v1/targets/{id}", ct)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _operator.PutAsJsonAsync($"/api/v1/targets/{id}", body, ct)).StatusCode);

        var events = await _app.AuditEventsAsync();
        Assert.Contains(events, e => e.Action == "target.create" && e.Details.Contains("admin script", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Action == "target.pin" && e.Details.Contains("admin script", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Action == "target.edit" && e.Details.Contains("admin script", StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.Details.Contains("PRIVATE KEY", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheEventStream_ResumesFromLastEventId_WithoutGapsOrDuplicates()
    {
        var ct = TestContext.Current.CancellationToken;
        const int total = 3000;
        var (runId, phases) = await RunSeed.AddRunningRunAsync(_app.Services, null, ("backup", "Back up", PhaseState.Running), ("pip-install", "Install", PhaseState.Pending));
        var writer = new RunLogWriter(_app.Services.GetRequiredService<IServiceScopeFactory>(), runId, ["s3cret"], TimeProvider.System);
        var writing = Task.Run(async () =>
        {
            for (var i = 1; i <= total; i++)
            {
                await writer.WriteAsync(phases[0], i == 7 ? "PGPASSWORD=s3cret pg_dump" : $"line {i}");
                if (i % 200 == 0)
                {
                    await writer.FlushAsync();
                    await Task.Delay(30);
                }
            }

            await writer.FlushAsync();
            await SetStateAsync(runId, RunState.Failed);
        }, ct);

        // Read part of the stream, then drop the connection mid-way.
        var received = new List<(long Seq, string Text)>();
        var events = new List<string>();
        await ReadStreamAsync(runId, null, received, events, stopAfter: 1000, ct);
        Assert.InRange(received.Count, 1000, total);
        var lastId = received[^1].Seq;

        // Come back with Last-Event-ID: exactly the rest, then "end" once the run stopped.
        await ReadStreamAsync(runId, lastId, received, events, stopAfter: null, ct);
        await writing;
        Assert.Equal(Enumerable.Range(1, total).Select(i => (long)i), received.Select(r => r.Seq));
        Assert.Equal("PGPASSWORD=•••• pg_dump", received[6].Text);
        Assert.Equal("end", events[^1]);
        Assert.Contains("phase", events);

        // The text form: ?after and limit, with the last sequence in a header.
        using var page = await _operator.GetAsync($"/api/v1/runs/{runId}/log?after=1000&limit=500", ct);
        var text = await page.Content.ReadAsStringAsync(ct);
        Assert.Equal("1500", page.Headers.GetValues("X-Last-Sequence").Single());
        Assert.Equal(Enumerable.Range(1001, 500).Select(i => $"line {i}"), text.TrimEnd('\n').Split('\n'));
        using var tail = await _operator.GetAsync($"/api/v1/runs/{runId}/log?after=2990", ct);
        Assert.Equal("3000", tail.Headers.GetValues("X-Last-Sequence").Single());
        Assert.Equal(10, (await tail.Content.ReadAsStringAsync(ct)).TrimEnd('\n').Split('\n').Length);

        var status = await _operator.GetFromJsonAsync<JsonElement>($"/api/v1/runs/{runId}", ct);
        Assert.Equal("Failed", status.GetProperty("state").GetString());
        Assert.Equal(total, status.GetProperty("lastLogSequence").GetInt64());
        Assert.Equal(2, status.GetProperty("phases").GetArrayLength());
    }

    [Fact]
    public async Task RunActions_AnswerProblems_404_400_409()
    {
        var ct = TestContext.Current.CancellationToken;
        var (runId, _) = await RunSeed.AddRunningRunAsync(_app.Services);
        int targetId;
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var run = await db.Runs.SingleAsync(r => r.Id == runId, ct);
            targetId = run.TargetId;
            run.ActiveTargetId = targetId;
            await db.SaveChangesAsync(ct);
        }

        using var missing = await _operator.PostAsync("/api/v1/runs/424242/start", null, ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);

        using var noReason = await _operator.PostAsJsonAsync($"/api/v1/runs/{runId}/rollback", new { reason = " " }, ct);
        Assert.Equal(HttpStatusCode.BadRequest, noReason.StatusCode);
        Assert.True((await noReason.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("errors").TryGetProperty("reason", out _));

        using var running = await _operator.PostAsync($"/api/v1/runs/{runId}/start", null, ct);
        Assert.Equal(HttpStatusCode.Conflict, running.StatusCode);
        Assert.Contains("not planned", (await running.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("detail").GetString(), StringComparison.Ordinal);

        using var unknownRunbook = await _operator.PostAsJsonAsync($"/api/v1/targets/{targetId}/runs", new { runbook = "nope" }, ct);
        Assert.Equal(HttpStatusCode.BadRequest, unknownRunbook.StatusCode);
        Assert.True((await unknownRunbook.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("errors").TryGetProperty("runbook", out _));

        using var second = await _operator.PostAsJsonAsync($"/api/v1/targets/{targetId}/runs", new { runbook = "fractal-release", to = "2.16.8" }, ct);
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        var problem = await second.Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.Equal("A run is already active on this target", problem.GetProperty("title").GetString());
        Assert.Equal(runId, problem.GetProperty("activeRun").GetInt32());

        // Only an Admin overrides failing checks.
        using var overriding = await _operator.PostAsJsonAsync($"/api/v1/targets/{targetId}/runs",
            new { runbook = "fractal-release", to = "2.16.8", overrides = new Dictionary<string, string> { ["backup.room"] = "disk is fine" } }, ct);
        Assert.Equal(HttpStatusCode.Forbidden, overriding.StatusCode);

        var runs = await _operator.GetFromJsonAsync<JsonElement>($"/api/v1/runs?target={targetId}&state=running", ct);
        Assert.Equal(runId, runs.EnumerateArray().Single().GetProperty("id").GetInt32());
        using var badState = await _operator.GetAsync("/api/v1/runs?state=sleeping", ct);
        Assert.Equal(HttpStatusCode.BadRequest, badState.StatusCode);
    }

    private async Task ReadStreamAsync(int runId, long? lastEventId, List<(long Seq, string Text)> received, List<string> events, int? stopAfter, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/runs/{runId}/log/stream");
        if (lastEventId is { } id)
        {
            request.Headers.Add("Last-Event-ID", id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        using var response = await _operator.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token), Encoding.UTF8);
        string? name = null, eventId = null, data = null;
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.Length > 0)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal)) { name = line[7..]; }
                else if (line.StartsWith("id: ", StringComparison.Ordinal)) { eventId = line[4..]; }
                else if (line.StartsWith("data: ", StringComparison.Ordinal)) { data = line[6..]; }
                continue;
            }

            events.Add(name ?? "message");
            if (name == "line")
            {
                var json = JsonDocument.Parse(data!).RootElement;
                Assert.Equal(eventId, json.GetProperty("seq").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
                received.Add((json.GetProperty("seq").GetInt64(), json.GetProperty("text").GetString()!));
                if (received.Count >= stopAfter)
                {
                    return;
                }
            }

            if (name == "end")
            {
                return;
            }

            (name, eventId, data) = (null, null, null);
        }
    }

    private async Task SetStateAsync(int runId, RunState state)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var run = await db.Runs.Include(r => r.Phases).SingleAsync(r => r.Id == runId);
        run.State = state;
        run.Phases[0].State = PhaseState.Failed;
        await db.SaveChangesAsync();
    }

    public async ValueTask DisposeAsync()
    {
        _admin.Dispose();
        _operator.Dispose();
        await _app.DisposeAsync();
    }
}
