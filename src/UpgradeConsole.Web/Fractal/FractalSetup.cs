using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using UpgradeConsole.Core.Fractal;
using UpgradeConsole.Web.Accounts;
using UpgradeConsole.Web.Hosting;
using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.Fractal;

public static class FractalSetup
{
    public static WebApplicationBuilder AddFractal(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<FractalAccess>();
        builder.Services.AddScoped<FractalUsersService>();
        builder.Services.AddScoped<PreflightService>();
        builder.AddProduct<FractalRuntime>(FractalProduct.Instance);
        return builder;
    }

    /// <summary>The htmx actions of the users page (Operator or Admin) and its summary (everyone).</summary>
    public static IEndpointRouteBuilder MapFractal(this IEndpointRouteBuilder app)
    {
        var users = app.MapGroup("/targets/{id:int}/users").RequireAntiforgery();

        users.MapGet("/summary", async (int id, HttpContext http, FractalUsersService service, CancellationToken ct) =>
            new RazorComponentResult<UsersSummary>(new Dictionary<string, object?>
            {
                [nameof(UsersSummary.View)] = await service.LoadAsync(id, ct),
                [nameof(UsersSummary.Query)] = UsersQuery.From(http.Request.Query),
            })).RequireAuthorization(Policies.View);

        users.MapPost("/activate", (int id, HttpContext http, FractalUsersService service, CancellationToken ct) => BulkAsync(id, true, http, service, ct))
            .RequireAuthorization(Policies.Operate);
        users.MapPost("/deactivate", (int id, HttpContext http, FractalUsersService service, CancellationToken ct) => BulkAsync(id, false, http, service, ct))
            .RequireAuthorization(Policies.Operate);

        users.MapPost("/{userId:int}/project-dir", async (int id, int userId, [FromForm] string version, [FromForm] string? value, HttpContext http, FractalUsersService service, CancellationToken ct) =>
            await RowAsync(id, userId, http, service, await service.SetProjectDirAsync(id, userId, version, value ?? "", http.User, ct), "project_dir saved.", ct))
            .RequireAuthorization(Policies.Operate);
        users.MapPost("/{userId:int}/slurm-user", async (int id, int userId, [FromForm] string version, [FromForm] string? value, HttpContext http, FractalUsersService service, CancellationToken ct) =>
            await RowAsync(id, userId, http, service, await service.SetSlurmUserAsync(id, userId, version, value ?? "", http.User, ct), "slurm_user saved.", ct))
            .RequireAuthorization(Policies.Operate);
        users.MapPost("/{userId:int}/settings-row", async (int id, int userId, [FromForm] string version, HttpContext http, FractalUsersService service, CancellationToken ct) =>
            await RowAsync(id, userId, http, service, await service.CreateSettingsRowAsync(id, userId, version, http.User, ct), "Settings row created.", ct))
            .RequireAuthorization(Policies.Operate);
        users.MapPost("/{userId:int}/check-dir", async (int id, int userId, FractalUsersService service, CancellationToken ct) =>
            Results.Content($"<span data-testid=\"check-text\">{System.Net.WebUtility.HtmlEncode(await service.CheckOnHostAsync(id, userId, ct))}</span>", "text/html; charset=utf-8"))
            .RequireAuthorization(Policies.Operate);

        users.MapPost("/pattern/preview", async (int id, [FromForm] string pattern, [FromForm] bool? onlyMissing, FractalUsersService service, CancellationToken ct) =>
            new RazorComponentResult<PatternPreview>(new Dictionary<string, object?>
            {
                [nameof(PatternPreview.Proposals)] = await service.PreviewPatternAsync(id, pattern, onlyMissing == true, ct),
                [nameof(PatternPreview.TargetId)] = id,
            })).RequireAuthorization(Policies.Operate);

        users.MapPost("/pattern/apply", async (int id, HttpContext http, FractalUsersService service, CancellationToken ct) =>
        {
            var form = await http.Request.ReadFormAsync(ct);
            var messages = new List<string>();
            foreach (var change in form["changes"].OfType<string>())
            {
                var parts = change.Split(':', 3);
                if (parts.Length != 3 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out var userId))
                {
                    continue;
                }

                var result = await service.SetProjectDirAsync(id, userId, parts[1], parts[2], http.User, ct);
                messages.Add(result.Applied
                    ? $"{result.Before?.Email}: project_dir set to {result.After?.ProjectDir}."
                    : $"{result.Before?.Email ?? $"user {userId}"}: not changed: {result.Error}");
            }

            return Region(await service.LoadAsync(id, ct), new UsersQuery(), messages);
        }).RequireAuthorization(Policies.Operate);
        return app;
    }

    private static async Task<IResult> BulkAsync(int id, bool value, HttpContext http, FractalUsersService service, CancellationToken ct)
    {
        var form = await http.Request.ReadFormAsync(ct);
        var selected = form["users"].OfType<string>()
            .Select(s => s.Split(':', 2))
            .Where(p => p.Length == 2 && int.TryParse(p[0], CultureInfo.InvariantCulture, out _))
            .Select(p => (int.Parse(p[0], CultureInfo.InvariantCulture), p[1]))
            .ToList();
        var messages = new List<string>();
        if (selected.Count == 0)
        {
            messages.Add("Select at least one user first.");
        }
        else
        {
            foreach (var change in await service.SetActiveVerifiedAsync(id, selected, value, http.User, ct))
            {
                messages.Add(change.Applied
                    ? $"{change.Before?.Email}: {(value ? "now active and verified" : "now not active and not verified")}."
                    : $"{change.Before?.Email}: not changed: {change.Error}");
            }
        }

        return Region(await service.LoadAsync(id, ct), UsersQuery.From(form), messages);
    }

    private static RazorComponentResult<UsersRegion> Region(UsersView view, UsersQuery query, IReadOnlyList<string> messages) =>
        new(new Dictionary<string, object?>
        {
            [nameof(UsersRegion.View)] = view,
            [nameof(UsersRegion.Query)] = query,
            [nameof(UsersRegion.CanEdit)] = true,
            [nameof(UsersRegion.Messages)] = messages,
        });

    private static async Task<IResult> RowAsync(int id, int userId, HttpContext http, FractalUsersService service, UserChange change, string done, CancellationToken ct)
    {
        var view = await service.LoadAsync(id, ct);
        var verdict = view.Verdicts.FirstOrDefault(v => v.User.Id == userId);
        if (verdict is null)
        {
            return Results.NotFound();
        }

        if (change.Applied)
        {
            // The counts above the table follow (UsersSummary listens for this event).
            http.Response.Headers["HX-Trigger"] = "users-changed";
        }

        return new RazorComponentResult<FractalUserRow>(new Dictionary<string, object?>
        {
            [nameof(FractalUserRow.Verdict)] = verdict,
            [nameof(FractalUserRow.TargetId)] = id,
            [nameof(FractalUserRow.Backend)] = view.Backend,
            [nameof(FractalUserRow.CanEdit)] = true,
            [nameof(FractalUserRow.Error)] = change.Applied ? null : change.Error,
            [nameof(FractalUserRow.Message)] = change.Applied ? done : null,
        });
    }
}
