namespace UpgradeConsole.Web.Targets;

public static class TargetsSetup
{
    /// <summary>
    /// The targets feature: connections, the agent pool and <see cref="TargetService"/>. The pages are
    /// interactive components that call the service (no endpoints of their own); the REST API maps its own.
    /// </summary>
    public static WebApplicationBuilder AddTargets(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<SshAgentPool>();
        // Its start ends the agents a killed process left; its stop ends this process's agents.
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SshAgentPool>());
        builder.Services.AddSingleton<SharedForwards>();
        builder.Services.AddSingleton<TargetConnections>();
        builder.Services.AddScoped<TargetService>();
        builder.Services.AddOptions<TargetWorkOptions>().BindConfiguration(TargetWorkOptions.Section);
        builder.Services.AddSingleton<TargetWorkLimiter>();
        builder.Services.AddSingleton<TargetReads>();
        return builder;
    }
}
