using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace UpgradeConsole.Web.Cli;

/// <summary>
/// <c>runs start [--at]|list|wait|rehearse|schedule|unschedule|status|log|checklist|tick|approve|retry|mark-done|rollback|abandon|cancel</c> and <c>preflight run</c>: thin clients of the REST API, for scripts and
/// CI. Exit codes: 0 success; 1 the run (or preflight) did not succeed; 2 usage, configuration or a
/// refused call; 3 gave up waiting (--timeout).
/// </summary>
internal static class RunsCommand
{
    public const int Succeeded = 0;
    public const int RunFailed = 1;
    public const int Refused = 2;
    public const int TimedOut = 3;

    public static IEnumerable<Command> Build(TextWriter output, TextWriter error, Func<string, string?> env)
    {
        var runs = new Command("runs", "Plan, start, follow and read runs through the API (UPGRADECONSOLE_URL, UPGRADECONSOLE_TOKEN).");

        var target = new Option<string>("--target") { Description = "The target's name or id.", Required = true };
        var runbook = new Option<string>("--runbook") { Description = "The runbook id (fractal-2.16-to-2.17.0, fractal-release).", Required = true };
        var to = new Option<string?>("--to") { Description = "The version to upgrade to (the 2.17.0 runbook knows its own)." };
        var data = new Option<bool>("--data-migration") { Description = "Release runbook: also run fractalctl update-db-data." };
        var batchSize = new Option<int?>("--batch-size") { Description = "Backend.AI minor runbook: hosts a rolling batch (default: a quarter of the hosts)." };
        var failuresAllowed = new Option<int?>("--failures-allowed") { Description = "Backend.AI: failed hosts the rollout tolerates before it stops (default 0)." };
        var wait = new Option<bool>("--wait") { Description = "Stream the log and wait for the end: exit 0 only when the run succeeded." };
        var chain = new Option<bool>("--chain")
        {
            Description = "Backend.AI: a --to further than one hop away is planned as a chain of runs, this run its first hop; each next hop is planned and started " +
                "when the one before succeeds, and the first failure stops the chain. With --wait: follows each next run until the chain ends; the exit code is the last run's.",
        };
        var timeout = new Option<int?>("--timeout") { Description = "With --wait: give up after this many minutes (exit 3; the run goes on)." };
        var overrides = new Option<string[]>("--override")
        {
            Description = "Admin only: let a failing preflight check pass, as CHECK=REASON (the check's id, a written reason; audited). Repeat for several.",
            AllowMultipleArgumentsPerToken = false,
        };
        overrides.Validators.Add(r =>
        {
            foreach (var value in r.GetValueOrDefault<string[]>() ?? [])
            {
                if (ParseOverride(value) is null)
                {
                    r.AddError($"--override '{value}' is not CHECK=REASON (a check id, '=', a written reason).");
                }
            }
        });
        var at = new Option<string?>("--at")
        {
            Description = "Schedule the start instead of starting now: 2026-11-30T22:00 (the target's time zone), or with an offset or Z. " +
                "Inside one of the target's maintenance windows when it has any. With --wait: waits for the start, then follows the run.",
        };
        var start = new Command("start", "Plan a run and start it (waiting for a second person's approval first when the target asks for one), or schedule its start (--at).")
        {
            target, runbook, to, data, overrides, wait, timeout, at, batchSize, failuresAllowed, chain,
        };
        start.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            using var limit = Limit(parse.GetValue(timeout), ct);
            try
            {
                var targetId = await ResolveTargetAsync(client, parse.GetValue(target)!, limit.Token);
                var given = (parse.GetValue(overrides) ?? []).Select(o => ParseOverride(o)!.Value).ToList();
                if (given.GroupBy(o => o.Check, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
                {
                    await error.WriteLineAsync($"--override names the check '{twice.Key}' twice.");
                    return Refused;
                }

                var planned = await client.PostAsync($"targets/{targetId}/runs",
                    new
                    {
                        runbook = parse.GetValue(runbook), to = parse.GetValue(to), dataMigration = parse.GetValue(data),
                        overrides = given.Count > 0 ? given.ToDictionary(o => o.Check, o => o.Reason, StringComparer.Ordinal) : null,
                        batchSize = parse.GetValue(batchSize), failuresAllowed = parse.GetValue(failuresAllowed), chain = parse.GetValue(chain),
                    }, limit.Token);
                var run = planned["run"]!;
                var id = run["id"]!.GetValue<int>();
                await output.WriteLineAsync($"Planned run {id}: {run["fromVersion"]} → {run["toVersion"]} ({run["url"]})");
                if (run["chain"] is { } planChain)
                {
                    await output.WriteLineAsync($"Hop {planChain["hop"]} of a chain of {planChain["hops"]}: " +
                        string.Join(", ", planChain["path"]!.AsArray().Select(h => $"{h!["fromVersion"]} → {h["toVersion"]} ({h["kind"]})")));
                }

                // With --chain, --wait follows the chain's runs one after the other (without it, exactly the one run as before).
                Func<int, Task<int>> follow = parse.GetValue(chain)
                    ? first => FollowChainAsync(client, first, output, error, limit.Token)
                    : first => WaitAsync(client, first, output, error, limit.Token);
                if (run["requiresApproval"]!.GetValue<bool>())
                {
                    await error.WriteLineAsync($"Run {id} needs a second Operator's or Admin's approval: {run["url"]}");
                    if (!parse.GetValue(wait))
                    {
                        return Succeeded;
                    }

                    while (true)
                    {
                        await Task.Delay(TimeSpan.FromSeconds(5), limit.Token);
                        var now = await client.GetAsync($"runs/{id}", limit.Token);
                        if (now["approvedBy"] is not null)
                        {
                            await error.WriteLineAsync($"Approved by {now["approvedBy"]}.");
                            break;
                        }

                        if (now["state"]!.GetValue<string>() != "Planned")
                        {
                            await error.WriteLineAsync($"Run {id} is {now["state"]}; not starting it.");
                            return RunFailed;
                        }
                    }
                }

                if (parse.GetValue(at) is { } when)
                {
                    var scheduled = await client.PostAsync($"runs/{id}/schedule", new { at = when }, limit.Token);
                    await output.WriteLineAsync($"Scheduled run {id} to start at {scheduled["schedule"]?["atLocal"]}.");
                    return parse.GetValue(wait) ? await follow(id) : Succeeded;
                }

                await client.PostAsync($"runs/{id}/start", null, limit.Token);
                await output.WriteLineAsync($"Started run {id}.");
                return parse.GetValue(wait) ? await follow(id) : Succeeded;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                await error.WriteLineAsync($"Gave up waiting after {parse.GetValue(timeout)} minute(s); the run goes on in the dashboard.");
                return TimedOut;
            }
        }));
        runs.Subcommands.Add(start);

        // A rehearsal of the runbook's database phases on a copy (issue 18): same exit codes as start --wait.
        var reuse = new Option<double?>("--reuse-dump-within")
        {
            Description = "Restore the newest verified dump of an earlier run of this target started within this many hours, instead of taking a fresh one.",
        };
        var rehearse = new Command("rehearse",
            "Rehearse a run's database phases on a copy (a scratch database, and the new release with a copy of its configuration in a scratch directory); production is never stopped or changed. " +
            "With --wait: exit 0 when the rehearsal passed and matched the plan's prediction, 1 when it failed (the copy is removed either way).")
        {
            target, runbook, to, data, reuse, wait, timeout,
        };
        rehearse.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            using var limit = Limit(parse.GetValue(timeout), ct);
            try
            {
                var targetId = await ResolveTargetAsync(client, parse.GetValue(target)!, limit.Token);
                var run = await client.PostAsync($"targets/{targetId}/rehearsals",
                    new { runbook = parse.GetValue(runbook), to = parse.GetValue(to), dataMigration = parse.GetValue(data), reuseDumpWithinHours = parse.GetValue(reuse) }, limit.Token);
                var id = run["id"]!.GetValue<int>();
                await output.WriteLineAsync($"Started rehearsal {id}: {run["fromVersion"]} → {run["toVersion"]} ({run["url"]})");
                return parse.GetValue(wait) ? await WaitAsync(client, id, output, error, limit.Token) : Succeeded;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                await error.WriteLineAsync($"Gave up waiting after {parse.GetValue(timeout)} minute(s); the rehearsal goes on in the dashboard.");
                return TimedOut;
            }
        }));
        runs.Subcommands.Add(rehearse);

        var runId = new Argument<int>("RUN") { Description = "The run's number." };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON instead of a summary." };
        var status = new Command("status", "Show a run's state, phases and checklist. Exit 0 when it succeeded, 1 when it stopped otherwise, 4 while it still moves or waits.") { runId, json };
        status.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var run = await client.GetAsync($"runs/{parse.GetValue(runId)}", ct);
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(run.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                await PrintRunAsync(run, output);
            }

            return run["state"]!.GetValue<string>() switch
            {
                "Succeeded" => Succeeded,
                "Planned" or "Running" or "RollingBack" or "WaitingForChecklist" => 4,
                _ => RunFailed,
            };
        }));
        runs.Subcommands.Add(status);

        var hostsJson = new Option<bool>("--json") { Description = "Print the API's JSON instead of a table." };
        var hostsState = new Option<string?>("--state") { Description = "Only hosts in this state: Pending, Running, Succeeded, Failed, Unreachable." };
        var hosts = new Command("hosts", "Show each host of a run's phases on many hosts (Backend.AI): phase, host, state, attempt, message. Exit 0; 1 when a host failed or is unreachable.")
            { runId, hostsState, hostsJson };
        hosts.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var wanted = parse.GetValue(hostsState);
            if (wanted is not null && !Enum.TryParse<Core.Fleet.FleetHostState>(wanted, ignoreCase: true, out _))
            {
                await error.WriteLineAsync($"--state: '{wanted}' is not one of Pending, Running, Succeeded, Failed, Unreachable.");
                return Refused;
            }

            var rows = (await client.GetAsync($"runs/{parse.GetValue(runId)}/hosts", ct)).AsArray()
                .Where(r => wanted is null || string.Equals(r!["state"]!.GetValue<string>(), wanted, StringComparison.OrdinalIgnoreCase)).ToList();
            if (parse.GetValue(hostsJson))
            {
                await output.WriteLineAsync(new JsonArray([.. rows.Select(r => r!.DeepClone())]).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                foreach (var row in rows)
                {
                    await output.WriteLineAsync($"{row!["phase"]}\t{row["host"]}\t{row["state"]}\tattempt {row["attempt"]}\t{row["message"]}".TrimEnd());
                }
            }

            return rows.Any(r => r!["state"]!.GetValue<string>() is "Failed" or "Unreachable") ? RunFailed : Succeeded;
        }));
        runs.Subcommands.Add(hosts);

        var follow = new Option<bool>("--follow", "-f") { Description = "Keep streaming new lines until the run stops moving." };
        var after = new Option<long>("--after") { Description = "Only lines after this sequence number." };
        var log = new Command("log", "Print a run's log (masked as stored).") { runId, follow, after };
        log.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var id = parse.GetValue(runId);
            if (parse.GetValue(follow))
            {
                await client.FollowAsync(id, parse.GetValue(after), (name, payload) => name == "line" ? PrintLineAsync(payload, output) : Task.CompletedTask, ct);
                return Succeeded;
            }

            await client.GetAsync($"runs/{id}", ct);
            var from = parse.GetValue(after);
            while (true)
            {
                var text = await client.GetTextAsync($"runs/{id}/log?after={from}&limit=50000", ct);
                if (text.Body.Length > 0)
                {
                    await output.WriteAsync(text.Body);
                }

                if (text.LastSequence <= from)
                {
                    return Succeeded;
                }

                from = text.LastSequence;
            }
        }));
        runs.Subcommands.Add(log);

        // The decisions a stopped or waiting run needs, for scripts (each is audited with the token).
        foreach (var (verb, help, needsReason) in new (string, string, bool)[]
        {
            ("approve", "Approve a planned run (not your own).", false),
            ("retry", "Run the failed phase again (--confirm for a phase not safe to run twice; --host for one failed host of a phase on many hosts).", false),
            ("mark-done", "Declare the failed phase done.", true),
            ("rollback", "Roll back what the run changed.", true),
            ("abandon", "Abandon a stopped run; nothing is undone.", true),
            ("cancel", "Stop the running step.", false),
        })
        {
            var reason = new Option<string?>("--reason") { Description = "Why (goes into the audit history).", Required = needsReason };
            var confirm = new Option<bool>("--confirm") { Description = "Retry a phase that is not safe to run twice, after checking the target." };
            var retryHost = new Option<string?>("--host") { Description = "A phase on many hosts: run this failed or unreachable host alone (its address, as `runs hosts` prints it)." };
            var action = new Command(verb, help) { runId, reason };
            var actionWait = new Option<bool>("--wait")
            {
                Description = verb switch
                {
                    "rollback" => "Stream the log and wait for the end: exit 0 only when the run is rolled back.",
                    "cancel" => "Wait until the step has stopped and the run waits for a decision (exit 0).",
                    _ => "Stream the log and wait for the end: exit 0 only when the run succeeded.",
                },
            };
            var actionTimeout = new Option<int?>("--timeout") { Description = "With --wait: give up after this many minutes (exit 3; the run goes on)." };
            if (verb != "abandon")
            {
                action.Options.Add(actionWait);
                action.Options.Add(actionTimeout);
            }

            if (verb == "retry")
            {
                action.Options.Add(confirm);
                action.Options.Add(retryHost);
            }

            action.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
            {
                var id = parse.GetValue(runId);
                object body = verb == "retry" ? new { confirm = parse.GetValue(confirm), host = parse.GetValue(retryHost) } : new { reason = parse.GetValue(reason) };
                var run = await client.PostAsync($"runs/{id}/{verb}", body, ct);
                await output.WriteLineAsync($"Run {id}: {run["state"]}");
                if (!parse.GetValue(actionWait))
                {
                    return Succeeded;
                }

                using var limit = Limit(parse.GetValue(actionTimeout), ct);
                try
                {
                    return verb switch
                    {
                        "rollback" => await WaitAsync(client, id, output, error, limit.Token, success: "RolledBack", after: LastSequence(run)),
                        "cancel" => await WaitAsync(client, id, output, error, limit.Token, success: null, after: LastSequence(run)),
                        _ => await WaitAsync(client, id, output, error, limit.Token, after: LastSequence(run)),
                    };
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    await error.WriteLineAsync($"Gave up waiting after {parse.GetValue(actionTimeout)} minute(s); the run goes on in the dashboard.");
                    return TimedOut;
                }
            }));
            runs.Subcommands.Add(action);
        }

        var listTarget = new Option<string?>("--target") { Description = "Only this target's runs (name or id)." };
        var listState = new Option<string?>("--state") { Description = $"Only runs in this state: {string.Join(", ", Enum.GetNames<Runs.RunState>())}." };
        listState.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } given && (!Enum.TryParse<Runs.RunState>(given, ignoreCase: true, out _) || int.TryParse(given, CultureInfo.InvariantCulture, out _)))
            {
                r.AddError($"--state '{given}' is not one of: {string.Join(", ", Enum.GetNames<Runs.RunState>())}.");
            }
        });
        var listRunbook = new Option<string?>("--runbook") { Description = "Only runs of this runbook." };
        var listLimit = new Option<int>("--limit") { Description = "At most this many, newest first (1–1000; 100).", DefaultValueFactory = _ => 100 };
        listLimit.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 1000)
            {
                r.AddError($"--limit {r.GetValueOrDefault<int>()} is not between 1 and 1000.");
            }
        });
        var ids = new Option<bool>("--ids") { Description = "Print only the runs' numbers, one a line (run=$(… runs list --target T --limit 1 --ids))." };
        var list = new Command("list", "List runs, newest first: number, target, runbook, versions, state, who planned it, when.") { listTarget, listState, listRunbook, listLimit, json, ids };
        list.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var query = new List<string> { $"limit={parse.GetValue(listLimit)}" };
            if (parse.GetValue(listTarget) is { } t)
            {
                query.Add($"target={await ResolveTargetAsync(client, t, ct)}");
            }

            if (parse.GetValue(listState) is { } s)
            {
                query.Add($"state={Uri.EscapeDataString(s)}");
            }

            if (parse.GetValue(listRunbook) is { } rb)
            {
                query.Add($"runbook={Uri.EscapeDataString(rb)}");
            }

            var found = (await client.GetAsync("runs?" + string.Join('&', query), ct)).AsArray();
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(found.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else if (parse.GetValue(ids))
            {
                foreach (var r in found)
                {
                    await output.WriteLineAsync(r!["id"]!.ToJsonString());
                }
            }
            else
            {
                await output.WriteLineAsync($"{"RUN",-6} {"TARGET",-7} {"RUNBOOK",-24} {"VERSIONS",-20} {"STATE",-20} {"PLANNED BY",-26} PLANNED AT");
                foreach (var r in found)
                {
                    await output.WriteLineAsync($"{r!["id"],-6} {r["targetId"],-7} {r["runbookId"],-24} {$"{r["fromVersion"]} → {r["toVersion"]}",-20} {r["state"],-20} {r["plannedBy"],-26} " +
                        r["plannedAt"]!.GetValue<DateTimeOffset>().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture));
                }
            }

            return Succeeded;
        }));
        runs.Subcommands.Add(list);

        var until = new Option<string>("--until")
        {
            Description = "end (the default): through the manual checklist, exit 0 only when the run succeeded; checklist: exit 0 as soon as the automatic phases are done " +
                "and the manual checks wait (or the run succeeded), 1 when it stopped otherwise.",
            DefaultValueFactory = _ => "end",
        };
        until.AcceptOnlyFromAmong("end", "checklist");
        var waitTimeout = new Option<int?>("--timeout") { Description = "Give up after this many minutes (exit 3; the run goes on)." };
        var waitCommand = new Command("wait", "Stream a run's log from now on and wait until it stops moving (a planned run: until it is started).") { runId, until, waitTimeout };
        waitCommand.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var id = parse.GetValue(runId);
            var current = await client.GetAsync($"runs/{id}", ct);
            using var limit = Limit(parse.GetValue(waitTimeout), ct);
            try
            {
                return parse.GetValue(until) == "checklist"
                    ? await WaitAsync(client, id, output, error, limit.Token, success: "WaitingForChecklist", after: LastSequence(current))
                    : await WaitAsync(client, id, output, error, limit.Token, after: LastSequence(current));
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                await error.WriteLineAsync($"Gave up waiting after {parse.GetValue(waitTimeout)} minute(s); the run goes on in the dashboard.");
                return TimedOut;
            }
        }));
        runs.Subcommands.Add(waitCommand);

        var scheduleAt = new Option<string>("--at") { Description = "When: 2026-11-30T22:00 (the target's time zone), or with an offset or Z.", Required = true };
        var schedule = new Command("schedule", "Schedule a planned run's start, or move it (audited).") { runId, scheduleAt };
        schedule.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var id = parse.GetValue(runId);
            var run = await client.PostAsync($"runs/{id}/schedule", new { at = parse.GetValue(scheduleAt) }, ct);
            await output.WriteLineAsync($"Run {id} starts at {run["schedule"]?["atLocal"]} ({run["schedule"]?["at"]}).");
            return Succeeded;
        }));
        runs.Subcommands.Add(schedule);

        var unscheduleReason = new Option<string?>("--reason") { Description = "Why (goes into the audit history)." };
        var unschedule = new Command("unschedule", "Cancel a planned run's scheduled start; it waits for a person again (audited).") { runId, unscheduleReason };
        unschedule.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var id = parse.GetValue(runId);
            var reasonText = parse.GetValue(unscheduleReason);
            await client.DeleteAsync($"runs/{id}/schedule" + (string.IsNullOrWhiteSpace(reasonText) ? "" : "?reason=" + Uri.EscapeDataString(reasonText)), ct);
            await output.WriteLineAsync($"Run {id} is no longer scheduled.");
            return Succeeded;
        }));
        runs.Subcommands.Add(unschedule);

        var checklist = new Command("checklist", "List a run's manual checklist: item number, ticked or not, by whom, the note.") { runId, json };
        checklist.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var run = await client.GetAsync($"runs/{parse.GetValue(runId)}", ct);
            var items = run["checklist"]!.AsArray();
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(items.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return Succeeded;
            }

            foreach (var item in items)
            {
                var done = item!["done"]!.GetValue<bool>();
                await output.WriteLineAsync($"{item["id"],4} [{(done ? "x" : " ")}] {item["text"]}" +
                    (done ? $" — {item["doneBy"]}" : "") + (item["note"] is { } note ? $" ({note})" : ""));
            }

            await output.WriteLineAsync($"{items.Count(i => i!["done"]!.GetValue<bool>())}/{items.Count} ticked; the run is {run["state"]}.");
            return Succeeded;
        }));
        runs.Subcommands.Add(checklist);

        var item = new Argument<int?>("ITEM") { Description = "The item's number (first column of `runs checklist`).", Arity = ArgumentArity.ZeroOrOne };
        var all = new Option<bool>("--all") { Description = "Tick every item not ticked yet." };
        var note = new Option<string?>("--note") { Description = "What was checked (kept with the tick and in the audit history)." };
        var tick = new Command("tick", "Tick a manual checklist item (or --all) once the automatic phases are done; the run succeeds when every item is ticked.") { runId, item, all, note };
        tick.Validators.Add(r =>
        {
            if (r.GetValue(item) is null == !r.GetValue(all))
            {
                r.AddError("Give either an ITEM number or --all.");
            }
        });
        tick.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var id = parse.GetValue(runId);
            var run = await client.GetAsync($"runs/{id}", ct);
            var items = run["checklist"]!.AsArray();
            List<int> wanted = parse.GetValue(all)
                ? [.. items.Where(i => !i!["done"]!.GetValue<bool>()).Select(i => i!["id"]!.GetValue<int>())]
                : [parse.GetValue(item)!.Value];
            if (!parse.GetValue(all) && !items.Any(i => i!["id"]!.GetValue<int>() == wanted[0]))
            {
                await error.WriteLineAsync($"Run {id} has no checklist item {wanted[0]} (items: {string.Join(", ", items.Select(i => i!["id"]))}).");
                return Refused;
            }

            foreach (var itemId in wanted)
            {
                run = await client.PostAsync($"runs/{id}/checklist/{itemId}", new { done = true, note = parse.GetValue(note) }, ct);
                var text = run["checklist"]!.AsArray().First(i => i!["id"]!.GetValue<int>() == itemId)!["text"];
                await output.WriteLineAsync($"Ticked {itemId}: {text}");
            }

            await output.WriteLineAsync($"Run {id}: {run["state"]}");
            return Succeeded;
        }));
        runs.Subcommands.Add(tick);

        var preflight = new Command("preflight", "Preflight checks through the API.");
        var preflightTarget = new Option<string>("--target") { Description = "The target's name or id.", Required = true };
        var run = new Command("run", "Run every preflight check on a target now. Exit 0 when none fails, 1 when some do.") { preflightTarget, json };
        run.SetAction((parse, ct) => WithClientAsync(env, error, async client =>
        {
            var targetId = await ResolveTargetAsync(client, parse.GetValue(preflightTarget)!, ct);
            var result = await client.PostAsync($"targets/{targetId}/preflight", null, ct);
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                foreach (var check in result["checks"]!.AsArray())
                {
                    var mark = check!["status"]!.GetValue<string>() switch { "Pass" => "PASS", "Warn" => "WARN", _ => "FAIL" };
                    await output.WriteLineAsync($"{mark}  {check["title"]}: {check["explanation"]}");
                }

                await output.WriteLineAsync($"{result["failed"]} failing, {result["warnings"]} warning(s).");
            }

            return result["passed"]!.GetValue<bool>() ? Succeeded : RunFailed;
        }));
        preflight.Subcommands.Add(run);
        return [runs, preflight];
    }

    /// <summary>
    /// Follows a chain of runs (ADR 0028): each run as <c>--wait</c> follows one, then, when it succeeded and hops are
    /// left, the next run once the dashboard's job created it (or the reason the chain stopped). The last run's exit code.
    /// </summary>
    private static async Task<int> FollowChainAsync(ApiClient client, int id, TextWriter output, TextWriter error, CancellationToken ct)
    {
        while (true)
        {
            var code = await WaitAsync(client, id, output, error, ct);
            var run = await client.GetAsync($"runs/{id}", ct);
            if (code != Succeeded || run["chain"] is not { } chain || chain["hop"]!.GetValue<int>() >= chain["hops"]!.GetValue<int>())
            {
                return code;
            }

            while (chain["nextRunId"] is null && chain["stopped"] is null)
            {
                await Task.Delay(TimeSpan.FromSeconds(2), ct);
                chain = (await client.GetAsync($"runs/{id}", ct))["chain"]!;
            }

            if (chain["nextRunId"] is null)
            {
                await error.WriteLineAsync($"The chain stopped after run {id}: {chain["stopped"]}");
                return RunFailed;
            }

            id = chain["nextRunId"]!.GetValue<int>();
            await output.WriteLineAsync($"Following run {id}: hop {chain["hop"]!.GetValue<int>() + 1} of {chain["hops"]} of the chain {chain["fromVersion"]} → {chain["toVersion"]}.");
            if ((await client.GetAsync($"runs/{id}", ct))["chain"]?["stopped"] is { } notStarted)
            {
                await error.WriteLineAsync($"The chain stopped at run {id}: {notStarted}");
                return RunFailed;
            }
        }
    }

    /// <summary>
    /// Streams the log until the run stops moving; waits through the manual checklist; 0 only when the run
    /// ends in <paramref name="success"/> (Succeeded unless said otherwise; null: any state where it stopped moving).
    /// </summary>
    private static async Task<int> WaitAsync(ApiClient client, int id, TextWriter output, TextWriter error, CancellationToken ct, string? success = "Succeeded", long after = 0)
    {
        // A planned run has no log stream yet (approve --wait): wait until someone starts it.
        var current = await client.GetAsync($"runs/{id}", ct);
        if (current["state"]!.GetValue<string>() == "Planned")
        {
            var scheduled = current["schedule"] is not null;
            await error.WriteLineAsync(scheduled
                ? $"Run {id} is scheduled to start at {current["schedule"]!["atLocal"]}; waiting for it ({current["url"]})."
                : $"Run {id} is planned; waiting until it is started ({current["url"]}).");
            while (current["state"]!.GetValue<string>() == "Planned")
            {
                await Task.Delay(TimeSpan.FromSeconds(3), ct);
                current = await client.GetAsync($"runs/{id}", ct);
                if (scheduled && current["state"]!.GetValue<string>() == "Planned" && current["schedule"] is null)
                {
                    // The scheduled start was refused when due (or the schedule was cancelled): the message says why.
                    await error.WriteLineAsync($"Run {id} did not start: {current["message"]?.GetValue<string>() ?? "its schedule was cancelled."}");
                    return RunFailed;
                }
            }
        }

        await client.FollowAsync(id, after, async (name, payload) =>
        {
            switch (name)
            {
                case "line":
                    await PrintLineAsync(payload, output);
                    break;
                case "phase":
                    var phase = JsonNode.Parse(payload)!;
                    if (phase["state"]!.GetValue<string>() is not ("Pending" or "Skipped"))
                    {
                        await error.WriteLineAsync($"── {phase["title"]}: {phase["state"]}{(phase["message"] is { } m ? " — " + m : "")}");
                    }

                    break;
            }
        }, ct);

        var run = await client.GetAsync($"runs/{id}", ct);
        if (run["state"]!.GetValue<string>() == "WaitingForChecklist" && success == "Succeeded")
        {
            var goesOn = run["phases"]?.AsArray().Any(p => p!["state"]!.GetValue<string>() == "Pending") == true;
            await error.WriteLineAsync(goesOn
                ? $"The run waits for the manual checks at {run["url"]} before it goes on:"
                : $"Every automatic phase is done. The run succeeds once people tick the manual checks at {run["url"]}:");
            foreach (var item in run["checklist"]!.AsArray().Where(i => !i!["done"]!.GetValue<bool>()))
            {
                await error.WriteLineAsync($"  [ ] {item!["text"]}");
            }

            while (run["state"]!.GetValue<string>() == "WaitingForChecklist")
            {
                await Task.Delay(TimeSpan.FromSeconds(3), ct);
                run = await client.GetAsync($"runs/{id}", ct);
            }

            if (run["state"]!.GetValue<string>() is "Running" or "Starting")
            {
                // A checklist before other phases: the run went on; follow it again from the last line shown.
                return await WaitAsync(client, id, output, error, ct, success, LastSequence(run));
            }
        }

        await PrintRunAsync(run, error);
        var state = run["state"]!.GetValue<string>();
        if (run["kind"]?.GetValue<string>() == "rehearsal")
        {
            if (state != "Succeeded")
            {
                await error.WriteLineAsync($"The rehearsal failed: {run["message"]}. Production was not touched; see {run["url"]}.");
            }
        }
        else if (state is "Failed" or "NeedsAttention" or "RollbackFailed")
        {
            await error.WriteLineAsync($"The run waits for a decision: retry, mark done, roll back or abandon it at {run["url"]} (or POST /api/v1/runs/{id}/retry|mark-done|rollback|abandon).");
        }

        // Waiting for the checklist: a run without manual checks has gone on to Succeeded, which is as good.
        return success is null || state == success || (success == "WaitingForChecklist" && state == "Succeeded") ? Succeeded : RunFailed;
    }

    /// <summary>The log lines a script saw already (an action's --wait prints only what comes after it).</summary>
    private static long LastSequence(JsonNode run) => run["lastLogSequence"]?.GetValue<long>() ?? 0;

    /// <summary>CHECK=REASON, both sides non-empty; null otherwise.</summary>
    private static (string Check, string Reason)? ParseOverride(string value)
    {
        var equals = value.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0 || string.IsNullOrWhiteSpace(value[..equals]) || string.IsNullOrWhiteSpace(value[(equals + 1)..]))
        {
            return null;
        }

        return (value[..equals].Trim(), value[(equals + 1)..].Trim());
    }

    private static async Task PrintLineAsync(string payload, TextWriter output)
    {
        var line = JsonNode.Parse(payload)!;
        await output.WriteLineAsync(line["text"]!.GetValue<string>());
    }

    private static async Task PrintRunAsync(JsonNode run, TextWriter writer)
    {
        await writer.WriteLineAsync($"Run {run["id"]} ({run["runbookId"]}, {run["fromVersion"]} → {run["toVersion"]}): {run["state"]}" +
            $" — {run["phasesDone"]}/{run["phasesTotal"]} phases done{(run["message"] is { } m ? ". " + m : "")}");
        if (run["schedule"] is { } schedule)
        {
            await writer.WriteLineAsync($"  Scheduled to start at {schedule["atLocal"]} by {schedule["by"]} (maintenance windows: {schedule["maintenanceWindows"]}).");
        }

        foreach (var phase in run["phases"]!.AsArray())
        {
            await writer.WriteLineAsync($"  {phase!["state"],-13} {phase["title"]}{(phase["message"] is { } pm ? " — " + pm : "")}");
        }

        await writer.WriteLineAsync($"  {run["url"]}");
    }

    internal static async Task<int> ResolveTargetAsync(ApiClient client, string nameOrId, CancellationToken ct)
    {
        if (int.TryParse(nameOrId, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return id;
        }

        var targets = (await client.GetAsync("targets", ct)).AsArray();
        return targets.FirstOrDefault(t => string.Equals(t!["name"]!.GetValue<string>(), nameOrId, StringComparison.Ordinal))?["id"]!.GetValue<int>()
            ?? throw new ApiCallException(System.Net.HttpStatusCode.NotFound, $"No target named '{nameOrId}' (names: {string.Join(", ", targets.Select(t => t!["name"]))}).");
    }

    private static CancellationTokenSource Limit(int? minutes, CancellationToken ct)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (minutes is > 0)
        {
            cts.CancelAfter(TimeSpan.FromMinutes(minutes.Value));
        }

        return cts;
    }

    internal static async Task<int> WithClientAsync(Func<string, string?> env, TextWriter error, Func<ApiClient, Task<int>> work)
    {
        var (client, problem) = ApiClient.FromEnvironment(env);
        if (client is null)
        {
            await error.WriteLineAsync(problem);
            return Refused;
        }

        using (client)
        {
            try
            {
                return await work(client);
            }
            catch (ApiCallException ex)
            {
                await error.WriteLineAsync(ex.Message);
                return Refused;
            }
            catch (HttpRequestException ex)
            {
                await error.WriteLineAsync($"Cannot reach {client.BaseAddress}: {ex.Message}");
                return Refused;
            }
        }
    }
}
