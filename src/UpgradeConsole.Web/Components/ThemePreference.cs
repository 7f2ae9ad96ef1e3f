namespace UpgradeConsole.Web.Components;

/// <summary>
/// A person's colour theme: their choice (light, dark, or the system's) and what it means now. Kept in
/// cookies (uc-theme: the choice; uc-system-theme: the system's scheme, noted by theme.js) so the server
/// renders the right colours before any script runs.
/// </summary>
public sealed record ThemePreference(string Choice, bool Dark)
{
    public const string Light = "light";
    public const string DarkChoice = "dark";
    public const string System = "system";

    public static IReadOnlyList<string> Choices { get; } = [Light, DarkChoice, System];

    public static ThemePreference FromCookies(IRequestCookieCollection cookies)
    {
        var choice = cookies["uc-theme"] is Light or DarkChoice ? cookies["uc-theme"]! : System;
        var dark = choice == System ? cookies["uc-system-theme"] == DarkChoice : choice == DarkChoice;
        return new ThemePreference(choice, dark);
    }
}
