using MudBlazor;

namespace UpgradeConsole.Web.Components.Layout;

/// <summary>The dashboard's colours in light and dark mode; fonts are the system's (nothing is fetched from a font CDN).</summary>
public static class DashboardTheme
{
    public static MudTheme Instance { get; } = new()
    {
        PaletteLight = new PaletteLight
        {
            Primary = "#1f5fa8",
            AppbarBackground = "#1f2a37",
            AppbarText = "#ffffff",
        },
        PaletteDark = new PaletteDark
        {
            Primary = "#7ab3ef",
            AppbarBackground = "#161b22",
        },
        Typography = new Typography
        {
            Default = new DefaultTypography
            {
                FontFamily = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
            },
        },
    };
}
