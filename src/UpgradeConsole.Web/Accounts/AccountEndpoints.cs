using Microsoft.AspNetCore.Authorization;
using UpgradeConsole.Web.Hosting;

namespace UpgradeConsole.Web.Accounts;

public static class AccountEndpoints
{
    public static IEndpointRouteBuilder MapAccounts(this IEndpointRouteBuilder app)
    {
        // Any signed-in person may sign out, even one whose role was just removed.
        app.MapPost("/account/logout", async (AppSignInManager signIn, ILogger<AppSignInManager> log, HttpContext http) =>
            {
                log.LogInformation("{User} signed out", http.User.Identity?.Name);
                await signIn.SignOutAsync();
                return Results.Redirect(AccountsSetup.LoginPath);
            })
            .RequireAuthorization(new AuthorizeAttribute())
            .RequireAntiforgery();
        return app;
    }
}
