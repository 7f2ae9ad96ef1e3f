using MudBlazor;

namespace UpgradeConsole.Web.Components;

/// <summary>
/// A <see cref="MudDataGrid{T}"/> with <c>ServerData</c> that asks for its first page while it is initialised,
/// not only after its first render. When the page already holds that page (read before the page rendered), the
/// answer is synchronous, so the grid's first render has the rows: the prerendered HTML shows them, and the
/// circuit's first render draws the same rows instead of an empty grid (no blank flash while the circuit starts).
/// The grid still asks again after its first render, as MudDataGrid does; the page answers that from the same
/// page it holds.
/// </summary>
public class FirstPageDataGrid<T> : MudDataGrid<T>
{
    protected override async Task OnInitializedAsync()
    {
        await base.OnInitializedAsync();
        if (ServerData is not null)
        {
            await ReloadServerData();
        }
    }
}
