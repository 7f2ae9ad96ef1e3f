using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Authentication;
using Microsoft.OpenApi;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Web.Audit;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Api;

/// <summary>The API's authorization policies: the same roles as the pages, but only a Bearer token authenticates.</summary>
public static class ApiPolicies
{
    public const string View = "Api.View";
    public const string Operate = "Api.Operate";
    public const string Administer = "Api.Administer";

    /// <summary>The OpenAPI document: a signed-in browser or a token.</summary>
    public const string Document = "Api.Document";
}

/// <summary>
/// <c>/api/v1</c>: JSON over the same services as the pages (same rules, same audit), Bearer tokens only,
/// errors as problem details, described at <c>/openapi/v1.json</c>.
/// </summary>
public static class ApiSetup
{
    public const string Prefix = "/api/v1";

    private const string DocumentScheme = "TokenOrSession";

    public static WebApplicationBuilder AddApi(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddScoped<ApiTokenService>();
        services.AddSingleton<RefusedTokenAudit>();
        services.AddOptions<ApiCallOptions>().BindConfiguration(ApiCallOptions.Section);
        services.AddSingleton<ApiCallAudit>();
        services.AddHostedService<ApiCallAuditFlusher>();
        services.AddSingleton<ApiTokenRateLimit>();
        services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, ApiTokenHandler>(ApiTokenHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(ApiPolicies.View, p => p.AddAuthenticationSchemes(ApiTokenHandler.SchemeName).RequireAuthenticatedUser().RequireRole(Roles.All))
            .AddPolicy(ApiPolicies.Operate, p => p.AddAuthenticationSchemes(ApiTokenHandler.SchemeName).RequireAuthenticatedUser().RequireRole(Roles.Admin, Roles.Operator))
            .AddPolicy(ApiPolicies.Administer, p => p.AddAuthenticationSchemes(ApiTokenHandler.SchemeName).RequireAuthenticatedUser().RequireRole(Roles.Admin))
            .AddPolicy(ApiPolicies.Document, p => p.AddAuthenticationSchemes(DocumentScheme).RequireAuthenticatedUser().RequireRole(Roles.All));
        // The document answers a token (scripts, tools) or a browser session (to explore the API): one scheme
        // chosen per request, so a refusal is answered once.
        services.AddAuthentication().AddPolicyScheme(DocumentScheme, "Token or session", o => o.ForwardDefaultSelector = http =>
            http.Request.Headers.Authorization.Count > 0 ? ApiTokenHandler.SchemeName : Microsoft.AspNetCore.Identity.IdentityConstants.ApplicationScheme);
        services.AddProblemDetails();
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Converters.Add(new JsonStringEnumConverter()));
        services.AddOpenApi("v1", o =>
        {
            o.ShouldInclude = d => d.RelativePath?.StartsWith("api/v1", StringComparison.Ordinal) == true;
            o.AddDocumentTransformer((document, _, _) =>
            {
                document.Info = new OpenApiInfo
                {
                    Title = "UpgradeConsole API",
                    Version = "v1",
                    Description = "Targets, preflight, Fractal users, runbooks, runs (with their logs) and the audit history. " +
                        "Authenticate with a personal API token: 'Authorization: Bearer uct_…'. Errors are RFC 7807 problem details.",
                };
                document.Components ??= new OpenApiComponents();
                document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
                document.Components.SecuritySchemes["token"] = new OpenApiSecurityScheme
                {
                    Type = SecuritySchemeType.Http,
                    Scheme = "bearer",
                    Description = "A personal API token (uct_…), made under your account's API tokens page.",
                };
                document.Security ??= [];
                document.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("token", document)] = [] });
                return Task.CompletedTask;
            });
        });
        return builder;
    }

    /// <summary>
    /// Around every API call: errors are problem details, never the HTML status pages (a request the
    /// framework could not bind, such as malformed JSON, gets one too); every write made with a token is an
    /// audit event (method, path, bounded query, status, token), refused ones included; reads are counted per token and
    /// minute (<see cref="ApiCallAudit"/>).
    /// </summary>
    public static WebApplication UseApiAudit(this WebApplication app)
    {
        app.UseWhen(http => http.Request.Path.StartsWithSegments(Prefix), branch => branch.Use(async (http, next) =>
        {
            if (http.Features.Get<Microsoft.AspNetCore.Diagnostics.IStatusCodePagesFeature>() is { } pages)
            {
                pages.Enabled = false;
            }

            try
            {
                await next(http);
                if (http.Response.StatusCode >= 400 && !http.Response.HasStarted && http.Response.ContentType is null && http.Response.ContentLength is null)
                {
                    await ApiProblems.WriteAsync(http, http.Response.StatusCode,
                        http.Response.StatusCode == StatusCodes.Status400BadRequest ? "The request could not be read" : "The request failed",
                        http.Response.StatusCode == StatusCodes.Status400BadRequest
                            ? "A parameter or the JSON body does not have the expected shape (see /openapi/v1.json for this endpoint)."
                            : $"HTTP {http.Response.StatusCode}.");
                }
            }
            catch (Exception ex) when (!http.Response.HasStarted && !http.RequestAborted.IsCancellationRequested)
            {
                http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("UpgradeConsole.Api")
                    .LogError(ex, "API call {Method} {Path} failed", http.Request.Method, http.Request.Path);
                await ApiProblems.WriteAsync(http, StatusCodes.Status500InternalServerError, "Something went wrong on the server",
                    $"The error is in the dashboard's log (trace id {http.TraceIdentifier}).");
            }
            finally
            {
                await http.RequestServices.GetRequiredService<ApiCallAudit>().RecordAsync(http.User, http.Request, http.Response.StatusCode);
            }
        }));
        return app;
    }

    public static WebApplication MapApi(this WebApplication app)
    {
        app.MapOpenApi("/openapi/{documentName}.json").RequireAuthorization(ApiPolicies.Document);

        var api = app.MapGroup(Prefix)
            .RequireAuthorization(ApiPolicies.View)
            .AddEndpointFilter(async (context, next) =>
            {
                // After authorization, so the token is known: one token cannot take the dashboard (or its audit history) for itself.
                if (TokenClaims.Of(context.HttpContext.User) is { } token
                    && context.HttpContext.RequestServices.GetRequiredService<ApiTokenRateLimit>().Refuse(token.Id) is { } wait)
                {
                    return ApiProblems.TooMany(context.HttpContext, "This token made too many calls in the last minute.", wait);
                }

                try
                {
                    return await next(context);
                }
                catch (TargetBusyException busy)
                {
                    return ApiProblems.Unavailable(context.HttpContext, busy.Message, busy.RetryAfter);
                }
                catch (Exception ex) when (ex is SshConnectionException or HostKeyNotPinnedException or RemoteCommandException or TimeoutException)
                {
                    return TypedResults.Problem(statusCode: StatusCodes.Status502BadGateway, title: "The target could not be reached", detail: ex.Message);
                }
                catch (Accounts.AccessDeniedException ex)
                {
                    // A service's own role check (the role held now, in the database) refused after the policy let the call in.
                    return TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Not allowed", detail: ex.Message);
                }
            })
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden);

        api.MapTargetsApi();
        api.MapFractalApi();
        BackendAi.ClusterApi.MapClusterApi(api);
        api.MapRunsApi();
        api.MapAuditApi();
        Notifications.NotificationsApi.MapNotificationsApi(api);

        // Anything else under the prefix: a problem, not the HTML "not found" page.
        api.Map("/{**rest}", (string? rest) => ApiProblems.NotFound($"API endpoint '{rest}'")).ExcludeFromDescription();
        return app;
    }
}
