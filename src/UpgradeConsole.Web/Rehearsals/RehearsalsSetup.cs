namespace UpgradeConsole.Web.Rehearsals;

public static class RehearsalsSetup
{
    /// <summary>Rehearsals of runbooks on a copy (issue 18, ADR 0022); their runs are driven by the run jobs.</summary>
    public static WebApplicationBuilder AddRehearsals(this WebApplicationBuilder builder)
    {
        builder.Services.AddScoped<RehearsalService>();
        builder.Services.AddScoped<RehearsalLeftovers>();
        return builder;
    }
}
