using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Cli;

/// <summary>
/// <c>targets list|show|add|edit|remove|scan|pin</c>: thin clients of the targets API (UPGRADECONSOLE_URL,
/// UPGRADECONSOLE_TOKEN; all but list and show need an Admin's token). Exit codes: 0 done; 2 usage, a
/// refused call or an unreachable dashboard or host.
/// </summary>
internal static class TargetsCommand
{
    private static readonly JsonSerializerOptions Indented = new(JsonSerializerOptions.Web) { WriteIndented = true };

    private static readonly JsonSerializerOptions ApiJson = new(JsonSerializerOptions.Web) { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    /// <summary>The fields a target has (as the API's JSON spells them) and the kind of value each takes.</summary>
    private static readonly Dictionary<string, JsonValueKind> Fields = JsonSerializer.SerializeToNode(new TargetForm(), ApiJson)!.AsObject()
        .Where(p => p.Key != "version")
        .ToDictionary(p => p.Key, p => p.Value?.GetValueKind() ?? JsonValueKind.String, StringComparer.OrdinalIgnoreCase);

    public static Command Build(TextWriter output, TextWriter error, Func<string, string?> env)
    {
        var targets = new Command("targets", "List, read, add, edit, remove targets and pin their host keys through the API.");
        var json = new Option<bool>("--json") { Description = "Print the API's JSON." };
        var target = new Argument<string>("TARGET") { Description = "The target's name or id." };

        var list = new Command("list", "List the targets: id, name, address, host key, installed version.") { json };
        list.SetAction((parse, ct) => RunsCommand.WithClientAsync(env, error, async client =>
        {
            var all = (await client.GetAsync("targets", ct)).AsArray();
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(all.ToJsonString(Indented));
                return 0;
            }

            await output.WriteLineAsync($"{"ID",-5} {"NAME",-24} {"ADDRESS",-32} {"HOST KEY",-10} VERSION");
            foreach (var t in all)
            {
                await output.WriteLineAsync($"{t!["id"],-5} {t["name"],-24} {$"{t["sshUser"]}@{t["host"]}:{t["port"]}",-32} {(t["hostKey"]!["trust"]?.GetValue<string>() == "HostCertificateAuthority" ? "TrustedCA" : t["hostKey"]!["state"]!.ToString()),-10} {t["installedVersion"]?.GetValue<string>() ?? "?"}");
            }

            return 0;
        }));
        targets.Subcommands.Add(list);

        var show = new Command("show", "Show one target's settings (never its key).") { target, json };
        show.SetAction((parse, ct) => RunsCommand.WithClientAsync(env, error, async client =>
        {
            var id = await RunsCommand.ResolveTargetAsync(client, parse.GetValue(target)!, ct);
            var found = (await client.GetAsync($"targets/{id}", ct)).AsObject();
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(found.ToJsonString(Indented));
                return 0;
            }

            foreach (var (key, value) in found)
            {
                await output.WriteLineAsync($"{key}: {(value is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : value?.ToJsonString() ?? "")}");
            }

            return 0;
        }));
        targets.Subcommands.Add(show);

        var set = new Option<string[]>("--set") { Description = $"FIELD=VALUE for any other field (repeat): {string.Join(", ", Fields.Keys)}." };
        set.Validators.Add(r =>
        {
            foreach (var value in r.GetValueOrDefault<string[]>() ?? [])
            {
                if (ParseField(value) is { Error: { } problem })
                {
                    r.AddError(problem);
                }
            }
        });
        var keyFile = new Option<FileInfo?>("--private-key-file") { Description = "Store this private key (read from the file; encrypted at rest, never shown again)." };
        keyFile.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<FileInfo?>() is { Exists: false } missing)
            {
                r.AddError($"--private-key-file: {missing.FullName} does not exist.");
            }
        });

        var name = new Option<string>("--name") { Description = "The target's name.", Required = true };
        var host = new Option<string>("--host") { Description = "Host name or address.", Required = true };
        var port = new Option<int?>("--port") { Description = "SSH port (22)." };
        var user = new Option<string>("--user") { Description = "SSH user.", Required = true };
        var directory = new Option<string>("--dir") { Description = "The directory fractal-server runs in (where its env file is); for OMERO the OMERO.server path (OMERODIR).", Required = true };
        var product = new Option<string?>("--product") { Description = "What runs there: fractal-server (the default) or omero (then --set pythonPath=<venv>/bin/python)." };
        var add = new Command("add", "Add a target (unpinned: scan and pin its host key next). Prints its id.") { name, host, port, user, directory, product, keyFile, set };
        add.SetAction((parse, ct) => RunsCommand.WithClientAsync(env, error, async client =>
        {
            var body = new JsonObject
            {
                ["name"] = parse.GetValue(name),
                ["host"] = parse.GetValue(host),
                ["port"] = parse.GetValue(port) ?? 22,
                ["sshUser"] = parse.GetValue(user),
                ["workingDirectory"] = parse.GetValue(directory),
            };
            if (parse.GetValue(product) is { Length: > 0 } chosen)
            {
                body["product"] = chosen;
            }

            await ApplyAsync(body, parse.GetValue(set), parse.GetValue(keyFile), ct);
            var created = await client.PostAsync("targets", body, ct);
            await output.WriteLineAsync(created["id"]!.ToJsonString());
            return 0;
        }));
        targets.Subcommands.Add(add);

        var editKeyFile = new Option<FileInfo?>("--private-key-file") { Description = keyFile.Description };
        editKeyFile.Validators.AddRange(keyFile.Validators);
        var edit = new Command("edit", "Change only the fields given (the target is read first; a change made meanwhile is refused).") { target, editKeyFile, set };
        edit.Validators.Add(r =>
        {
            if ((r.GetValue(set) ?? []).Length == 0 && r.GetValue(editKeyFile) is null)
            {
                r.AddError("Give at least one --set FIELD=VALUE (or --private-key-file).");
            }
        });
        edit.SetAction((parse, ct) => RunsCommand.WithClientAsync(env, error, async client =>
        {
            var id = await RunsCommand.ResolveTargetAsync(client, parse.GetValue(target)!, ct);
            var current = await client.GetAsync($"targets/{id}", ct);
            var body = new JsonObject { ["version"] = current["version"]!.GetValue<string>() };
            await ApplyAsync(body, parse.GetValue(set), parse.GetValue(editKeyFile), ct);
            var changed = await client.PatchAsync($"targets/{id}", body, ct);
            await output.WriteLineAsync($"Target {id} ({changed["name"]}) changed: {string.Join(", ", body.Select(p => p.Key).Where(k => k != "version"))}.");
            return 0;
        }));
        targets.Subcommands.Add(edit);

        var yes = new Option<bool>("--yes") { Description = "Confirm: the target and its stored key are deleted (its runs' history stays)." };
        var remove = new Command("remove", "Delete a target (refused while a run is active on it); needs --yes.") { target, yes };
        remove.Validators.Add(r =>
        {
            if (!r.GetValue(yes))
            {
                r.AddError("Removing a target destroys its stored key: add --yes to confirm.");
            }
        });
        remove.SetAction((parse, ct) => RunsCommand.WithClientAsync(env, error, async client =>
        {
            var id = await RunsCommand.ResolveTargetAsync(client, parse.GetValue(target)!, ct);
            await client.DeleteAsync($"targets/{id}", ct);
            await output.WriteLineAsync($"Deleted target {id}.");
            return 0;
        }));
        targets.Subcommands.Add(remove);

        var jump = new Option<bool>("--jump-host") { Description = "The target's jump host instead of the target." };
        var scan = new Command("scan", "Print the host keys the host presents now, one per line: FINGERPRINT TYPE. Compare them with the host's own before pinning.") { target, jump };
        scan.SetAction((parse, ct) => RunsCommand.WithClientAsync(env, error, async client =>
        {
            var id = await RunsCommand.ResolveTargetAsync(client, parse.GetValue(target)!, ct);
            foreach (var key in (await client.GetAsync($"targets/{id}/host-keys?jumpHost={(parse.GetValue(jump) ? "true" : "false")}", ct)).AsArray())
            {
                await output.WriteLineAsync($"{key!["fingerprint"]} {key["keyType"]}");
            }

            return 0;
        }));
        targets.Subcommands.Add(scan);

        var fingerprint = new Argument<string>("FINGERPRINT") { Description = "The SHA256:… fingerprint to pin (checked against what the host presents now)." };
        fingerprint.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is not { } f || !f.StartsWith("SHA256:", StringComparison.Ordinal))
            {
                r.AddError($"'{r.GetValueOrDefault<string>()}' is not a SHA256:… fingerprint.");
            }
        });
        var pin = new Command("pin", "Pin the host key with this fingerprint; the host is scanned again and only a key it presents now is pinned.") { target, fingerprint, jump };
        pin.SetAction((parse, ct) => RunsCommand.WithClientAsync(env, error, async client =>
        {
            var id = await RunsCommand.ResolveTargetAsync(client, parse.GetValue(target)!, ct);
            var pinned = await client.PostAsync($"targets/{id}/pin", new { fingerprint = parse.GetValue(fingerprint), jumpHost = parse.GetValue(jump) }, ct);
            await output.WriteLineAsync(parse.GetValue(jump)
                ? $"Pinned the jump host's key {pinned["hostKey"]!["jumpHostFingerprint"]} for target {id}."
                : $"Pinned {pinned["hostKey"]!["keyType"]} {pinned["hostKey"]!["fingerprint"]} for target {id}.");
            return 0;
        }));
        targets.Subcommands.Add(pin);
        return targets;
    }

    private static async Task ApplyAsync(JsonObject body, string[]? sets, FileInfo? keyFile, CancellationToken ct)
    {
        foreach (var value in sets ?? [])
        {
            var (field, node, _) = ParseField(value);
            body[field!] = node;
        }

        if (keyFile is not null)
        {
            body["privateKey"] = await File.ReadAllTextAsync(keyFile.FullName, ct);
        }
    }

    /// <summary>FIELD=VALUE as the API's JSON wants it (numbers and true/false for the fields that take them), or why not.</summary>
    private static (string? Field, JsonNode? Value, string? Error) ParseField(string text)
    {
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0)
        {
            return (null, null, $"--set '{text}' is not FIELD=VALUE.");
        }

        var name = text[..equals].Trim();
        var value = text[(equals + 1)..];
        if (!Fields.TryGetValue(name, out var kind))
        {
            return (null, null, $"--set: '{name}' is not a field of a target (fields: {string.Join(", ", Fields.Keys)}).");
        }

        var field = Fields.Keys.First(k => string.Equals(k, name, StringComparison.OrdinalIgnoreCase));
        switch (kind)
        {
            case JsonValueKind.Number:
                return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number)
                    ? (field, JsonValue.Create(number), null)
                    : (null, null, $"--set {field}: '{value}' is not a number.");
            case JsonValueKind.True or JsonValueKind.False:
                return bool.TryParse(value, out var flag)
                    ? (field, JsonValue.Create(flag), null)
                    : (null, null, $"--set {field}: '{value}' is not true or false.");
            default:
                // An empty value clears an optional field.
                return (field, value.Length == 0 ? null : JsonValue.Create(value), null);
        }
    }
}
