using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace UpgradeConsole.Tests.Runs;

/// <summary>
/// The run page's log viewer (js/run-log.js), as a reader meets it: it keeps up to 20,000 lines but draws only those
/// in view, so a test looks for a line the way a person does (the search box, scrolling to it, a link to it), and
/// reads which lines are kept from the view's data-first, data-last and data-kept.
/// </summary>
internal static partial class RunLogView
{
    /// <summary>Waits until a kept line contains <paramref name="text"/>: the search box's count follows the lines as they arrive.</summary>
    public static async Task ExpectLineAsync(IPage page, string text, float timeout = 30_000)
    {
        await page.FillAsync("#log-search", text);
        await Assertions.Expect(page.GetByTestId("log-search-count")).ToHaveTextAsync(SomeMatch(), new() { Timeout = timeout });
    }

    /// <summary>The kept lines: the first, the last and how many (a contiguous range holds last − first + 1).</summary>
    public static async Task<(long First, long Last, long Kept)> KeptAsync(IPage page)
    {
        var values = await page.Locator("#log-lines").EvaluateAsync<string[]>("v => [v.dataset.first, v.dataset.last, v.dataset.kept]");
        return (long.Parse(values[0], CultureInfo.InvariantCulture), long.Parse(values[1], CultureInfo.InvariantCulture), long.Parse(values[2], CultureInfo.InvariantCulture));
    }

    /// <summary>The sequences of the lines drawn (in view and around it), in page order.</summary>
    public static Task<long[]> DrawnAsync(IPage page) =>
        page.Locator("#log-lines .uc-log-line").EvaluateAllAsync<long[]>("ls => ls.map(l => +l.dataset.seq)");

    /// <summary>Scrolls the log (every phase shown) so that line <paramref name="sequence"/> is in the middle, as a reader would, and waits for it to be drawn.</summary>
    public static async Task ScrollToLineAsync(IPage page, long sequence)
    {
        await page.Locator("#log-lines").EvaluateAsync("""
            (v, seq) => {
              const height = v.shadowRoot.querySelector('.uc-log-line').getBoundingClientRect().height;
              const list = v.shadowRoot.querySelector('.uc-log-list');
              v.scrollTop = list.offsetTop + (seq - +v.dataset.first + 0.5) * height - v.clientHeight / 2;
            }
            """, sequence);
        await Assertions.Expect(page.Locator($"#L{sequence}")).ToBeAttachedAsync(new() { Timeout = 30_000 });
    }

    [GeneratedRegex("^[1-9][0-9]* match")]
    private static partial Regex SomeMatch();
}
