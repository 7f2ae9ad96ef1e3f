using Microsoft.Playwright;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>What a person does on the interactive run page: an action button, then its confirmation dialog.</summary>
public static class RunPages
{
    /// <summary>Opens <paramref name="path"/> and waits until its circuit runs it (clicks before that reach nothing).</summary>
    public static async Task GotoInteractiveAsync(this IPage page, string path)
    {
        ArgumentNullException.ThrowIfNull(page);
        await page.GotoAsync(path);
        await page.WaitForInteractiveAsync();
    }

    /// <summary>
    /// Clicks the run page's button for <paramref name="action"/> (id action-{action}), gives the dialog a reason and ticks
    /// "I checked the target" when asked to, and confirms. Waits for the dialog to close: the action reached the server.
    /// </summary>
    public static async Task ConfirmAsync(this IPage page, string action, string? reason = null, bool checkedTheTarget = false)
    {
        ArgumentNullException.ThrowIfNull(page);
        await page.ClickAsync($"#action-{action}");
        var dialog = page.Locator(".mud-dialog:has(#dialog-confirm)");
        await Assertions.Expect(dialog).ToBeVisibleAsync();
        if (reason is not null)
        {
            await dialog.Locator("#action-reason").FillAsync(reason);
        }

        if (checkedTheTarget)
        {
            await dialog.Locator("#action-confirm").CheckAsync();
        }

        await dialog.Locator("#dialog-confirm").ClickAsync();
        await Assertions.Expect(dialog).ToHaveCountAsync(0);
    }
}
