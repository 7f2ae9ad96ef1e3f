using UpgradeConsole.Core.BackendAi;
using UpgradeConsole.Web.Api;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.BackendAi;

/// <summary>A cluster host as the API shows it: settings and pin, never a key.</summary>
public sealed record ClusterHostDto(int Id, IReadOnlyList<string> Roles, string Host, int Port, string User, string PythonEnv, string ConfigPath,
    string StopCommand, string StartCommand, string StatusCommand, string HostKeyState, string? PinnedFingerprint)
{
    public static ClusterHostDto From(ClusterHost h) => new(h.Id, h.RoleList, h.Host, h.Port, h.User, h.PythonEnv, h.ConfigPath,
        h.StopCommand, h.StartCommand, h.StatusCommand, h.HostKeyState.ToString(), h.PinnedFingerprint);
}

/// <summary>Settings for hosts added: templates with {role}, {config}, {host}, {port}; empty ones take the defaults.</summary>
public record HostSettingsRequest
{
    public string? PythonEnv { get; init; }

    public string? ConfigPath { get; init; }

    public string? StopCommand { get; init; }

    public string? StartCommand { get; init; }

    public string? StatusCommand { get; init; }

    internal HostTemplates Templates => new() { PythonEnv = PythonEnv, ConfigPath = ConfigPath, StopCommand = StopCommand, StartCommand = StartCommand, StatusCommand = StatusCommand };
}

/// <summary>One host: <c>roles</c> (<c>agent</c>, <c>manager,storage-proxy</c>), <c>login</c> (<c>user@host:port</c>), optionally its key's fingerprint to pin.</summary>
public sealed record AddHostRequest : HostSettingsRequest
{
    public string Roles { get; init; } = "";

    public string Login { get; init; } = "";

    public string? Fingerprint { get; init; }
}

/// <summary>A pasted list, one host a line: <c>role user@host:port [SHA256:…]</c>.</summary>
public sealed record PasteHostsRequest : HostSettingsRequest
{
    public string Text { get; init; } = "";
}

public sealed record PinHostRequest(string Fingerprint);

/// <summary>What the last look at the cluster found.</summary>
public sealed record ClusterDto(DateTimeOffset? At, VersionSpread? Spread, string? AlembicRevision, string? DatabaseError, int? RunningSessions,
    IReadOnlyList<AgentSessions> Sessions, IReadOnlyList<HostReport> Hosts);

/// <summary>A Backend.AI target's hosts: listed by everyone; added, pasted, removed and pinned by an Admin.</summary>
public static class ClusterApi
{
    public static RouteGroupBuilder MapClusterApi(this RouteGroupBuilder api)
    {
        var hosts = api.MapGroup("/targets/{id:int}").WithTags("Backend.AI clusters");

        hosts.MapGet("/hosts", async (int id, TargetService targets, ClusterService cluster, HttpContext http, CancellationToken ct) =>
            await targets.FindAsync(id, ct) is null
                ? ApiProblems.NotFound("target")
                : (IResult)TypedResults.Ok((await cluster.HostsAsync(id, http.User, ct)).Select(ClusterHostDto.From).ToList()))
            .WithSummary("List a cluster's hosts").Produces<List<ClusterHostDto>>();

        hosts.MapGet("/cluster", async (int id, TargetService targets, ClusterService cluster, HttpContext http, CancellationToken ct) =>
        {
            if (await targets.FindAsync(id, http.User, ct) is not { } target)
            {
                return ApiProblems.NotFound("target");
            }

            return TypedResults.Ok(Dto(TargetService.LastDiscovery(target)));
        }).WithSummary("What the last look at the cluster found")
            .WithDescription("Each host's versions and service state, which hosts differ from the cluster's version, the manager database's alembic revision and the compute sessions per agent. POST /targets/{id}/cluster/discover (or the target page's \"Look at the server\") looks again.")
            .Produces<ClusterDto>();

        hosts.MapPost("/cluster/discover", async (int id, TargetService targets, HttpContext http, CancellationToken ct) =>
        {
            if (await targets.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            var record = await targets.DiscoverAsync(id, http.User, ct);
            return TypedResults.Ok(Dto(record));
        }).RequireAuthorization(ApiPolicies.Operate)
            .WithSummary("Look at every host of the cluster now")
            .Produces<ClusterDto>();

        hosts.MapPost("/hosts", async (int id, AddHostRequest input, ClusterService cluster, HttpContext http, CancellationToken ct) =>
            Result(await cluster.AddAsync(id, new ClusterHostInput(input.Roles, input.Login) { Fingerprint = input.Fingerprint, Settings = input.Templates }, http.User, ct), id))
            .RequireAuthorization(ApiPolicies.Administer)
            .WithSummary("Add one host to a cluster")
            .WithDescription("roles: agent, manager, storage-proxy, webserver, app-proxy-coordinator, app-proxy-worker (several joined by commas); login: user@host:port. With fingerprint the host key is pinned at once if the host presents it; otherwise pin it before anything connects.")
            .Produces<List<ClusterHostDto>>(StatusCodes.Status201Created).ProducesValidationProblem().ProducesProblem(StatusCodes.Status409Conflict);

        hosts.MapPost("/hosts/paste", async (int id, PasteHostsRequest input, ClusterService cluster, HttpContext http, CancellationToken ct) =>
            Result(await cluster.PasteAsync(id, input.Text, input.Templates, http.User, ct), id))
            .RequireAuthorization(ApiPolicies.Administer)
            .WithSummary("Add hosts from a pasted list")
            .WithDescription("One host a line: 'role user@host:port', optionally followed by the host key's SHA256 fingerprint. A bad line refuses the whole list (400, naming the line); nothing is saved.")
            .Produces<List<ClusterHostDto>>(StatusCodes.Status201Created).ProducesValidationProblem().ProducesProblem(StatusCodes.Status409Conflict);

        hosts.MapDelete("/hosts/{hostId:int}", async (int id, int hostId, ClusterService cluster, HttpContext http, CancellationToken ct) =>
        {
            var result = await cluster.RemoveAsync(id, hostId, http.User, ct);
            return result.Succeeded ? (IResult)TypedResults.NoContent() : ApiProblems.NotFound("host");
        }).RequireAuthorization(ApiPolicies.Administer).WithSummary("Remove a host from a cluster");

        hosts.MapGet("/hosts/{hostId:int}/host-keys", async (int id, int hostId, ClusterService cluster, HttpContext http, CancellationToken ct) =>
        {
            var (keys, error) = await cluster.ScanAsync(id, hostId, http.User, ct);
            return error == ClusterService.NoSuchHost ? ApiProblems.NotFound("host")
                : error is not null
                ? TypedResults.Problem(statusCode: StatusCodes.Status502BadGateway, title: "The host keys could not be read", detail: error)
                : (IResult)TypedResults.Ok(keys.Select(k => new ScannedKeyDto(k.Type, k.Fingerprint)).ToList());
        }).RequireAuthorization(ApiPolicies.Administer).WithSummary("Scan the host keys a cluster host presents now").Produces<List<ScannedKeyDto>>();

        hosts.MapPost("/hosts/{hostId:int}/pin", async (int id, int hostId, PinHostRequest input, ClusterService cluster, HttpContext http, CancellationToken ct) =>
        {
            if (string.IsNullOrWhiteSpace(input.Fingerprint))
            {
                return ApiProblems.Invalid("fingerprint", "Give the SHA256:… fingerprint of the host key to pin.");
            }

            var result = await cluster.PinAsync(id, hostId, input.Fingerprint, http.User, ct);
            return result.Succeeded ? TypedResults.Ok(ClusterHostDto.From(result.Hosts[0]))
                : result.Failure == ClusterFailure.NotFound ? ApiProblems.NotFound("host")
                : ApiProblems.Conflict(string.Join(" ", result.Errors));
        }).RequireAuthorization(ApiPolicies.Administer).WithSummary("Pin a cluster host's key by fingerprint").Produces<ClusterHostDto>();
        return api;
    }

    private static ClusterDto Dto(DiscoveryRecord? record)
    {
        var found = record?.Cluster;
        return new ClusterDto(record?.At, found?.Spread, found?.AlembicRevision, found?.DatabaseError ?? (record is not null && found is null ? record.Error : null),
            found is null || found.DatabaseError is not null ? null : found.RunningSessions, found?.Sessions ?? [], found?.Hosts ?? []);
    }

    private static IResult Result(ClusterResult result, int targetId)
    {
        if (result.Succeeded)
        {
            return TypedResults.Created($"{ApiSetup.Prefix}/targets/{targetId}/hosts", result.Hosts.Select(ClusterHostDto.From).ToList());
        }

        var error = string.Join(" ", result.Errors);
        return result.Failure switch
        {
            ClusterFailure.NotFound => ApiProblems.NotFound("target"),
            ClusterFailure.Invalid => ApiProblems.Invalid("text", error),
            _ => ApiProblems.Conflict(error),
        };
    }
}
