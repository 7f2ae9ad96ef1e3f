namespace UpgradeConsole.Web.Targets;

public static class TargetsSetup
{
    /// <summary>
    /// The targets feature: connections and <see cref="TargetService"/>. The pages are
    /// interactive components that call the service (no endpoints of their own); the REST API maps its own.
    /// </summary>
    public static WebApplicationBuilder AddTargets(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<SharedForwards>();
        builder.Services.AddSingleton<TargetConnections>();
        // After the migrations (registered earlier): ends masters a killed process left, moves stored keys off OpenSSH.
        builder.Services.AddHostedService<OpenSshAtStart>();
        builder.Services.AddScoped<TargetService>();
        builder.Services.AddOptions<TargetWorkOptions>().BindConfiguration(TargetWorkOptions.Section);
        builder.Services.AddSingleton<TargetWorkLimiter>();
        builder.Services.AddSingleton<TargetReads>();
        return builder;
    }
}
