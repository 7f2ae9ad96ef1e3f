using Bunit;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;

namespace UpgradeConsole.Tests.Components;

/// <summary>
/// A bUnit context with MudBlazor's services registered as the app registers them (<c>AddMudServices</c>),
/// and its JavaScript calls answered loosely: these tests read what a component renders and raises, not
/// what MudBlazor's script does in a browser (the Playwright tests cover that).
/// </summary>
public abstract class MudComponentContext : BunitContext
{
    protected MudComponentContext()
    {
        Services.AddMudServices();
        JSInterop.Mode = JSRuntimeMode.Loose;
    }

    /// <summary>Renders the providers a page relies on (popovers, dialogs, snackbars), as MainLayout does.</summary>
    protected IRenderedComponent<MudPopoverProvider> RenderProviders() => Render<MudPopoverProvider>();
}
