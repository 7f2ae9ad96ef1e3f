using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.Fractal;

public static class FractalSetup
{
    /// <summary>
    /// Fractal plugged in: its services and its product. It maps no endpoints of its own: the users, preflight and
    /// plan pages are interactive and call the services directly (the REST API is in <c>Api/FractalApi.cs</c>).
    /// </summary>
    public static WebApplicationBuilder AddFractal(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<FractalAccess>();
        builder.Services.AddScoped<FractalUsersService>();
        builder.Services.AddScoped<PreflightService>();
        builder.AddProduct<FractalRuntime>(FractalProduct.Instance);
        return builder;
    }
}
