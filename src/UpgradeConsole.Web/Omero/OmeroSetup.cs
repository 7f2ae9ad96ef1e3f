using UpgradeConsole.Web.Runbooks;

namespace UpgradeConsole.Web.Omero;

public static class OmeroSetup
{
    /// <summary>Plugs OMERO.server in: its runbook, its part of the plan page, its runtime.</summary>
    public static WebApplicationBuilder AddOmero(this WebApplicationBuilder builder) => builder.AddProduct<OmeroRuntime>(OmeroProduct.Instance);
}
