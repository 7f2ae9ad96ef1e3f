using Microsoft.AspNetCore.Http.HttpResults;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Web.Fractal;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Api;

/// <summary>Preflight (run: Operator; latest: everyone) and the Fractal users of a target, with the users page's fixes.</summary>
public static class FractalApi
{
    public static RouteGroupBuilder MapFractalApi(this RouteGroupBuilder api)
    {
        var target = api.MapGroup("/targets/{id:int}");

        // The preflight of the target's own product (Fractal's checks, OMERO's …).
        target.MapPost("/preflight", async (int id, TargetService targets, Runbooks.RunbookCatalog catalog, HttpContext http, CancellationToken ct) =>
            await targets.FindAsync(id, ct) is not { } found
                ? ApiProblems.NotFound("target")
                : catalog.RuntimeFor(http.RequestServices, found) is { } product
                    ? TypedResults.Ok(PreflightDto.From(await product.PreflightAsync(id, http.User, ct)))
                    : ApiProblems.Conflict($"The product '{found.Product}' of this target is not plugged in."))
            .RequireAuthorization(ApiPolicies.Operate).WithTags("Preflight")
            .WithSummary("Run the preflight checks now")
            .WithDescription("Runs every check against the target (over SSH and its database) and stores the result for the next plan. A target that cannot be reached gives one failing check, not an error.")
            .Produces<PreflightDto>().ProducesProblem(StatusCodes.Status404NotFound);

        target.MapGet("/preflight", async (int id, TargetService targets, PreflightService preflight, CancellationToken ct) =>
        {
            if (await targets.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            return await preflight.LatestAsync(id, ct) is { } latest
                ? TypedResults.Ok(PreflightDto.From(latest))
                : TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found", detail: "No preflight has run on this target yet.");
        }).WithTags("Preflight").WithSummary("The latest preflight result").Produces<PreflightDto>().ProducesProblem(StatusCodes.Status404NotFound);


        target.MapGet("/fractal/users", async (int id, string? filter, string? q, string? sort, int? page, int? pageSize, TargetService targets, FractalUsersService service, CancellationToken ct) =>
        {
            var errors = new Dictionary<string, string[]>();
            if (filter is not null && !UsersQuery.Filters.Contains(filter))
            {
                errors["filter"] = [$"One of: {string.Join(", ", UsersQuery.Filters)}."];
            }

            if (sort is not null && !UsersQuery.Sorts.Contains(sort))
            {
                errors["sort"] = [$"One of: {string.Join(", ", UsersQuery.Sorts)}."];
            }

            if (page is < 1)
            {
                errors["page"] = ["Pages start at 1."];
            }

            if (pageSize is < 1 or > 1000)
            {
                errors["pageSize"] = ["1 to 1000."];
            }

            if (errors.Count > 0)
            {
                return ApiProblems.Invalid(errors);
            }

            if (await targets.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            var view = await service.LoadAsync(id, ct);
            var size = pageSize ?? UsersQuery.DefaultPageSize;
            var matching = view.Matching(new UsersQuery(filter ?? "all", q, sort ?? "id"));
            var number = page ?? 1;
            return TypedResults.Ok(new FractalUsersPage(matching.Count, number, size,
                view.Counts.Migrated, view.Counts.LeftOut, view.Counts.Blocks, view.Backend,
                [.. matching.Skip((number - 1) * size).Take(size).Select(FractalUserDto.From)]));
        }).WithTags("Fractal users").AddEndpointFilter(EnvFileProblems).WithSummary("List the Fractal users with what 2.17.0 will do to each")
            .WithDescription("filter: all, blocking, left-out, migrated; q: part of the e-mail; sort: id, email, outcome, project_dir. The counts are over all users.")
            .Produces<FractalUsersPage>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);

        target.MapPatch("/fractal/users/{userId:int}", async (int id, int userId, FractalUserChange change, TargetService targets, FractalUsersService service, HttpContext http, CancellationToken ct) =>
        {
            if (string.IsNullOrWhiteSpace(change.Version))
            {
                return ApiProblems.Invalid("version", "Send the user's version as you read it: a change made meanwhile is then refused instead of overwritten.");
            }

            if (change is { IsActive: null, IsVerified: null, ProjectDir: null, SlurmUser: null, CreateSettingsRow: not true })
            {
                return ApiProblems.Invalid("change", "Nothing to change: send isActive, isVerified, projectDir, slurmUser or createSettingsRow.");
            }

            if (await targets.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            // One opening of the target for the whole request: read, each change in order, read again.
            var result = await service.FixAsync(id, userId, change.Version.Trim(),
                new UserFix(change.CreateSettingsRow == true, change.IsActive, change.IsVerified, change.ProjectDir, change.SlurmUser), http.User, ct);
            if (result.Before is null)
            {
                return ApiProblems.NotFound("Fractal user");
            }

            if (result.Refused is var (field, refused))
            {
                return refused.Conflict
                    ? TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Changed meanwhile", detail: refused.Error,
                        extensions: new Dictionary<string, object?> { ["current"] = refused.Before is null ? null : FractalUserDto.From(refused.Before) })
                    : ApiProblems.Invalid(field, refused.Error ?? "Refused.");
            }

            return TypedResults.Ok(FractalUserDto.From(result.After!));
        }).RequireAuthorization(ApiPolicies.Operate).WithTags("Fractal users").AddEndpointFilter(EnvFileProblems)
            .WithSummary("Fix one Fractal user")
            .WithDescription("The users page's fixes with its validation and audit: isActive / isVerified, projectDir (absolute, no shell metacharacters), slurmUser, createSettingsRow. Changes apply in that order; the first refusal stops (earlier ones stay applied and audited).")
            .Produces<FractalUserDto>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        return api;
    }

    /// <summary>The env file or the database cannot be read as the users page needs (e.g. POSTGRES_DB unset): 409 with the reason.</summary>
    private static async ValueTask<object?> EnvFileProblems(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (Targets.TargetBusyException busy)
        {
            return ApiProblems.Unavailable(context.HttpContext, busy.Message, busy.RetryAfter);
        }
        catch (InvalidOperationException ex)
        {
            return ApiProblems.Conflict(ex.Message);
        }
    }
}
