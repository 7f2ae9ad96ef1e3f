using System.CommandLine;
using System.Text.Json;
using UpgradeConsole.Core.BackendAi;

namespace UpgradeConsole.Web.Cli;

/// <summary>
/// <c>upgrade-path check|plan --product backend.ai --releases FILE …</c>: the upgrade-path planner from a
/// shell, with no dashboard database. Exit 0: allowed (or planned); 1: refused, the first forbidden hop and
/// the rule it breaks in one line; 2: a wrong argument (unknown product, unreadable list, not a version).
/// </summary>
internal static class UpgradePathCommand
{
    private static readonly string[] Products = ["backend.ai"];

    private static readonly JsonSerializerOptions Json = new(JsonSerializerOptions.Web) { WriteIndented = true };

    public static Command Build(TextWriter output, TextWriter error)
    {
        var command = new Command("upgrade-path", "Check or plan a chain of upgrades against the product's upgrade-path rules.");

        Option<string> Product() => new("--product") { Description = "The product whose rules apply: backend.ai.", Required = true };
        Option<FileInfo> Releases() => new("--releases")
        {
            Description = "A file listing the released versions, one a line, in any order (# comments and pre-releases are skipped).",
            Required = true,
        };

        var checkProduct = Product();
        var checkReleases = Releases();
        var chain = new Argument<string[]>("VERSION") { Description = "The chain to check, installed version first.", Arity = new ArgumentArity(2, 1000) };
        var check = new Command("check", "Exit 0 when every hop of the chain is allowed; 1 with the first forbidden hop and the rule it breaks.")
        {
            checkProduct, checkReleases, chain,
        };
        check.SetAction(async (parse, ct) =>
        {
            var (releases, failure) = await ReadAsync(parse.GetValue(checkProduct)!, parse.GetValue(checkReleases)!, error, ct);
            if (releases is null)
            {
                return failure;
            }

            var versions = new List<BackendAiVersion>();
            foreach (var text in parse.GetValue(chain)!)
            {
                if (!BackendAiVersion.TryParse(text, out var v, out var why))
                {
                    await error.WriteLineAsync(why);
                    return 2;
                }

                versions.Add(v);
            }

            if (UpgradePath.CheckChain(releases, versions) is { } refusal)
            {
                await error.WriteLineAsync($"refused ({Rule(refusal.Rule)}): {refusal.Reason}");
                return 1;
            }

            await output.WriteLineAsync($"allowed: {string.Join(" → ", versions)} ({versions.Count - 1} hop{(versions.Count == 2 ? "" : "s")}).");
            return 0;
        });
        command.Subcommands.Add(check);

        var planProduct = Product();
        var planReleases = Releases();
        var from = new Option<string>("--from") { Description = "The installed version.", Required = true };
        var to = new Option<string>("--to") { Description = "The wanted version.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the chain as JSON (each hop with its kind: minor or major)." };
        var plan = new Command("plan", "Print the shortest allowed chain, one version a line (the installed one first); exit 1 with the refusal.")
        {
            planProduct, planReleases, from, to, json,
        };
        plan.SetAction(async (parse, ct) =>
        {
            var (releases, failure) = await ReadAsync(parse.GetValue(planProduct)!, parse.GetValue(planReleases)!, error, ct);
            if (releases is null)
            {
                return failure;
            }

            if (!BackendAiVersion.TryParse(parse.GetValue(from), out var f, out var why) || !BackendAiVersion.TryParse(parse.GetValue(to), out var t, out why))
            {
                await error.WriteLineAsync(why);
                return 2;
            }

            var result = UpgradePath.Plan(releases, f, t);
            if (result.Refusal is { } refusal)
            {
                await error.WriteLineAsync($"refused ({Rule(refusal.Rule)}): {refusal.Reason}");
                return 1;
            }

            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    product = "backend.ai",
                    from = f.ToString(),
                    to = t.ToString(),
                    hops = result.Hops.Select(h => new { from = h.From.ToString(), to = h.To.ToString(), kind = h.Kind.ToString().ToLowerInvariant() }),
                }, Json));
                return 0;
            }

            await output.WriteLineAsync(f.ToString());
            foreach (var hop in result.Hops)
            {
                await output.WriteLineAsync(hop.To.ToString());
            }

            return 0;
        });
        command.Subcommands.Add(plan);
        return command;
    }

    /// <summary>The rule's name as a script greps it: minor-consecutive, no-major-skipped, …</summary>
    internal static string Rule(UpgradeRule rule) => rule switch
    {
        UpgradeRule.Released => "released",
        UpgradeRule.Forward => "forward",
        UpgradeRule.MinorConsecutive => "minor-consecutive",
        UpgradeRule.NoMajorSkipped => "no-major-skipped",
        UpgradeRule.MajorFromLatestMinor => "major-from-latest-minor",
        _ => rule.ToString(),
    };

    private static async Task<(BackendAiReleases? Releases, int Exit)> ReadAsync(string product, FileInfo file, TextWriter error, CancellationToken ct)
    {
        if (!Products.Contains(product.Trim(), StringComparer.OrdinalIgnoreCase))
        {
            await error.WriteLineAsync($"Unknown product '{product}' for upgrade paths. Known: {string.Join(", ", Products)}.");
            return (null, 2);
        }

        string[] lines;
        try
        {
            lines = await File.ReadAllLinesAsync(file.FullName, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"Cannot read the releases file {file.FullName}: {e.Message}");
            return (null, 2);
        }

        var releases = BackendAiReleases.Read(lines, out var problem);
        if (problem is not null)
        {
            await error.WriteLineAsync($"{file.Name}: {problem}");
            return (null, 2);
        }

        return (releases, 0);
    }
}
