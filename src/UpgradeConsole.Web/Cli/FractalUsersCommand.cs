using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace UpgradeConsole.Web.Cli;

/// <summary>
/// <c>fractal-users list|set</c>: the users page's list and fixes for scripts, as thin clients of
/// <c>GET|PATCH /api/v1/targets/{id}/fractal/users</c> (the same validation, version guard and audit; set needs
/// an Operator's token). Exit codes: 0 done; 2 usage, a refused call (the server's reason in one line), an
/// unknown user or an unreachable dashboard or host.
/// </summary>
internal static class FractalUsersCommand
{
    /// <summary>The API's filters, as <c>--outcome</c> takes them.</summary>
    private static readonly string[] Outcomes = ["all", "blocking", "left-out", "migrated"];

    private static readonly JsonSerializerOptions Indented = new(JsonSerializerOptions.Web) { WriteIndented = true };

    public static Command Build(TextWriter output, TextWriter error, Func<string, string?> env)
    {
        var users = new Command("fractal-users", "List a Fractal target's users with what the upgrade will do to each, and fix them, through the API.");
        var target = new Option<string>("--target") { Description = "The target's name or id.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON (every user, with its outcome, reasons and version)." };
        var outcome = new Option<string>("--outcome") { Description = "Only these users: all (the default), blocking, left-out, migrated.", DefaultValueFactory = _ => "all" };
        outcome.Validators.Add(r =>
        {
            if (!Outcomes.Contains(r.GetValueOrDefault<string>()))
            {
                r.AddError($"--outcome '{r.GetValueOrDefault<string>()}' is not one of: {string.Join(", ", Outcomes)}.");
            }
        });

        var list = new Command("list", "List the users: id, e-mail, outcome, active/verified, slurm_user, project_dir, and why a user is blocked or left out.")
        {
            target, outcome, json,
        };
        list.SetAction((parse, ct) => RunsCommand.WithClientAsync(env, error, async client =>
        {
            var targetId = await RunsCommand.ResolveTargetAsync(client, parse.GetValue(target)!, ct);
            var (page, all) = await ReadAllAsync(client, targetId, parse.GetValue(outcome)!, null, ct);
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(all.ToJsonString(Indented));
                return 0;
            }

            await output.WriteLineAsync($"{"ID",-5} {"EMAIL",-32} {"OUTCOME",-9} {"A/V",-4} {"SLURM USER",-14} {"PROJECT DIR",-30} REASONS");
            foreach (var u in all)
            {
                var flags = $"{(u!["isActive"]!.GetValue<bool>() ? "A" : "-")}{(u["isVerified"]!.GetValue<bool>() ? "V" : "-")}";
                await output.WriteLineAsync($"{u["id"],-5} {u["email"],-32} {u["outcome"],-9} {flags,-4} {u["slurmUser"]?.GetValue<string>() ?? "-",-14} {u["projectDir"]?.GetValue<string>() ?? "-",-30} " +
                    string.Join("; ", u["reasons"]!.AsArray().Select(r => r!.GetValue<string>())));
            }

            // On stderr: the table alone is on stdout for a script's grep.
            await error.WriteLineAsync($"{all.Count} shown; of all users {page["migrated"]} migrated, {page["leftOut"]} left out, {page["blocks"]} blocking (backend {page["backend"]}).");
            return 0;
        }));
        users.Subcommands.Add(list);

        var user = new Option<string>("--user") { Description = "The Fractal user's e-mail (or id).", Required = true };
        var projectDir = new Option<string?>("--project-dir") { Description = "Set project_dir (absolute, no shell metacharacters)." };
        var slurmUser = new Option<string?>("--slurm-user") { Description = "Set slurm_user." };
        var activate = new Option<bool>("--activate") { Description = "Set is_active." };
        var verify = new Option<bool>("--verify") { Description = "Set is_verified." };
        var settingsRow = new Option<bool>("--create-settings-row") { Description = "Give a user without settings a settings row first (then --project-dir, --slurm-user apply to it)." };
        var set = new Command("set", "Fix one user as the users page does (validated, audited; a change made meanwhile is refused). Changes apply in the order: settings row, flags, project_dir, slurm_user; the first refusal stops.")
        {
            target, user, projectDir, slurmUser, activate, verify, settingsRow,
        };
        set.Validators.Add(r =>
        {
            if (r.GetValue(projectDir) is null && r.GetValue(slurmUser) is null && !r.GetValue(activate) && !r.GetValue(verify) && !r.GetValue(settingsRow))
            {
                r.AddError("Nothing to change: give --project-dir, --slurm-user, --activate, --verify or --create-settings-row.");
            }
        });
        set.SetAction((parse, ct) => RunsCommand.WithClientAsync(env, error, async client =>
        {
            var targetId = await RunsCommand.ResolveTargetAsync(client, parse.GetValue(target)!, ct);
            var wanted = parse.GetValue(user)!.Trim();
            var found = await FindUserAsync(client, targetId, wanted, ct);
            if (found is null)
            {
                await error.WriteLineAsync($"Target {targetId} has no Fractal user '{wanted}'.");
                return RunsCommand.Refused;
            }

            var body = new JsonObject { ["version"] = found["version"]!.GetValue<string>() };
            if (parse.GetValue(settingsRow))
            {
                body["createSettingsRow"] = true;
            }

            if (parse.GetValue(activate))
            {
                body["isActive"] = true;
            }

            if (parse.GetValue(verify))
            {
                body["isVerified"] = true;
            }

            if (parse.GetValue(projectDir) is { } dir)
            {
                body["projectDir"] = dir;
            }

            if (parse.GetValue(slurmUser) is { } slurm)
            {
                body["slurmUser"] = slurm;
            }

            var id = found["id"]!.GetValue<int>();
            var after = await client.PatchAsync($"targets/{targetId}/fractal/users/{id}", body, ct);
            await output.WriteLineAsync($"Fixed user {id} ({after["email"]}): {after["outcome"]}" +
                $"{(after["reasons"]!.AsArray() is { Count: > 0 } reasons ? " — " + string.Join("; ", reasons.Select(r => r!.GetValue<string>())) : "")}.");
            return 0;
        }));
        users.Subcommands.Add(set);
        return users;
    }

    /// <summary>Every user the filter matches, page after page (the API gives at most 1,000 at a time), with the first page's counts.</summary>
    private static async Task<(JsonNode Page, JsonArray Users)> ReadAllAsync(ApiClient client, int targetId, string filter, string? q, CancellationToken ct)
    {
        var all = new JsonArray();
        JsonNode? first = null;
        for (var number = 1; ; number++)
        {
            var page = await client.GetAsync($"targets/{targetId}/fractal/users?filter={filter}&pageSize=1000&page={number}" +
                (q is null ? "" : "&q=" + Uri.EscapeDataString(q)), ct);
            first ??= page;
            var users = page["users"]!.AsArray();
            var count = users.Count;
            foreach (var u in users.ToList())
            {
                users.Remove(u);
                all.Add(u);
            }

            if (count < 1000 || all.Count >= page["total"]!.GetValue<int>())
            {
                return (first, all);
            }
        }
    }

    /// <summary>The user with this e-mail (exactly, else the only one equal but for case) or id; null when there is none.</summary>
    private static async Task<JsonNode?> FindUserAsync(ApiClient client, int targetId, string wanted, CancellationToken ct)
    {
        var byId = int.TryParse(wanted, NumberStyles.None, CultureInfo.InvariantCulture, out var id);
        var (_, candidates) = await ReadAllAsync(client, targetId, "all", byId ? null : wanted, ct);
        if (byId)
        {
            return candidates.FirstOrDefault(u => u!["id"]!.GetValue<int>() == id);
        }

        return candidates.FirstOrDefault(u => string.Equals(u!["email"]!.GetValue<string>(), wanted, StringComparison.Ordinal))
            ?? (candidates.Where(u => string.Equals(u!["email"]!.GetValue<string>(), wanted, StringComparison.OrdinalIgnoreCase)).ToList() is [var only] ? only : null);
    }
}
