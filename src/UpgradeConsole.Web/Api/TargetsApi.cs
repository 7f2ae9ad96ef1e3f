using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using UpgradeConsole.Web.Targets;

namespace UpgradeConsole.Web.Api;

/// <summary>Targets: list and read (everyone), create, edit (whole or in part), delete and pin a host key (Admin).</summary>
public static class TargetsApi
{
    public static RouteGroupBuilder MapTargetsApi(this RouteGroupBuilder api)
    {
        var targets = api.MapGroup("/targets").WithTags("Targets");

        api.MapGet("/targets", async (TargetService service, CancellationToken ct) =>
            TypedResults.Ok((await service.ListAsync(ct)).Select(TargetDto.From).ToList()))
            .WithTags("Targets").WithSummary("List targets");

        targets.MapGet("/{id:int}", async Task<Results<Ok<TargetDto>, ProblemHttpResult>> (int id, TargetService service, CancellationToken ct) =>
            await service.FindAsync(id, ct) is { } t ? TypedResults.Ok(TargetDto.From(t)) : (ProblemHttpResult)ApiProblems.NotFound("target"))
            .WithSummary("Get a target");

        api.MapPost("/targets", async (TargetForm input, TargetService service, HttpContext http, CancellationToken ct) =>
        {
            if (Validate(input) is { } invalid)
            {
                return invalid;
            }

            var result = await service.CreateAsync(input, http.User, ct);
            if (!result.Succeeded)
            {
                return Refusal(result);
            }

            var created = await service.FindAsync(result.TargetId!.Value, ct);
            return TypedResults.Created($"{ApiSetup.Prefix}/targets/{created!.Id}", TargetDto.From(created));
        }).RequireAuthorization(ApiPolicies.Administer).WithTags("Targets")
            .WithSummary("Create a target")
            .WithDescription("The private key (authMethod StoredKey) is encrypted at rest and never returned. The new target is unpinned: pin its host key before anything connects.")
            .Produces<TargetDto>(StatusCodes.Status201Created).ProducesValidationProblem().ProducesProblem(StatusCodes.Status409Conflict);

        targets.MapPut("/{id:int}", async (int id, TargetForm input, TargetService service, HttpContext http, CancellationToken ct) =>
        {
            if (await service.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            if (input.Version == Guid.Empty)
            {
                return ApiProblems.Invalid("version", "Send the version you read (GET the target first): it guards against overwriting someone else's change.");
            }

            if (Validate(input) is { } invalid)
            {
                return invalid;
            }

            var result = await service.UpdateAsync(id, input, http.User, ct);
            return result.Succeeded ? TypedResults.Ok(TargetDto.From((await service.FindAsync(id, ct))!)) : Refusal(result);
        }).RequireAuthorization(ApiPolicies.Administer)
            .WithSummary("Edit a target")
            .WithDescription("Send every field, with the version you read. Leave privateKey empty to keep the stored key. A new address clears the pinned host key.")
            .Produces<TargetDto>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

        targets.MapPatch("/{id:int}", async (int id, JsonObject? input, TargetService service, IOptions<JsonOptions> json, HttpContext http, CancellationToken ct) =>
        {
            var target = await service.FindAsync(id, ct);
            if (target is null)
            {
                return ApiProblems.NotFound("target");
            }

            if (input is null)
            {
                return ApiProblems.Invalid("", "Send a JSON object with the fields to change and the version you read.");
            }

            var (form, problem) = Patch(TargetForm.From(target), input, json.Value.SerializerOptions);
            if (problem is not null)
            {
                return problem;
            }

            if (Validate(form!) is { } invalid)
            {
                return invalid;
            }

            var result = await service.UpdateAsync(id, form!, http.User, ct);
            return result.Succeeded ? TypedResults.Ok(TargetDto.From((await service.FindAsync(id, ct))!)) : Refusal(result);
        }).RequireAuthorization(ApiPolicies.Administer)
            .Accepts<JsonObject>("application/json")
            .WithSummary("Change some fields of a target")
            .WithDescription("Send only the fields to change (as the target's JSON spells them, the same rules as a full edit) and the version you read; fields not sent keep their value. " +
                "privateKey replaces the stored key. A new address clears the pinned host key.")
            .Produces<TargetDto>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

        targets.MapDelete("/{id:int}", async (int id, TargetService service, HttpContext http, CancellationToken ct) =>
        {
            if (await service.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            var result = await service.DeleteAsync(id, http.User, ct);
            return result.Succeeded ? TypedResults.NoContent() : ApiProblems.Conflict(string.Join(" ", result.Errors));
        }).RequireAuthorization(ApiPolicies.Administer)
            .WithSummary("Delete a target")
            .WithDescription("Refused (409) while a run is active on the target. The stored private key and passphrase are destroyed; the runs' history stays readable.")
            .Produces(StatusCodes.Status204NoContent).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

        targets.MapGet("/{id:int}/host-keys", async (int id, bool? jumpHost, TargetService service, HttpContext http, CancellationToken ct) =>
        {
            if (await service.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            var (keys, error) = await service.ScanAsync(id, jumpHost == true, http.User, ct);
            return error is not null
                ? TypedResults.Problem(statusCode: StatusCodes.Status502BadGateway, title: "The host keys could not be read", detail: error)
                : TypedResults.Ok(keys.Select(k => new ScannedKeyDto(k.Type, k.Fingerprint)).ToList());
        }).RequireAuthorization(ApiPolicies.Administer)
            .WithSummary("Scan the host keys a target presents now")
            .WithDescription("Compare the fingerprints with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the host) before pinning one.")
            .Produces<List<ScannedKeyDto>>();

        targets.MapPost("/{id:int}/pin", async (int id, PinRequest input, TargetService service, HttpContext http, CancellationToken ct) =>
        {
            if (await service.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            if (string.IsNullOrWhiteSpace(input.Fingerprint))
            {
                return ApiProblems.Invalid("fingerprint", "Give the SHA256:… fingerprint of the host key to pin.");
            }

            var result = await service.PinAsync(id, input.Fingerprint.Trim(), input.JumpHost, http.User, ct);
            return result.Succeeded
                ? TypedResults.Ok(TargetDto.From((await service.FindAsync(id, ct))!))
                : ApiProblems.Conflict(string.Join(" ", result.Errors));
        }).RequireAuthorization(ApiPolicies.Administer)
            .WithSummary("Pin a host key by fingerprint")
            .WithDescription("The dashboard scans the host again and pins the key only if the host presents one with this fingerprint now.")
            .Produces<TargetDto>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status409Conflict);
        return api;
    }

    /// <summary>
    /// The stored target's form with the fields sent laid over it. The version is required (the same guard
    /// as a full edit); an unknown field or a value of the wrong kind is refused, per field.
    /// </summary>
    internal static (TargetForm? Form, IResult? Problem) Patch(TargetForm current, JsonObject input, JsonSerializerOptions options)
    {
        var merged = JsonSerializer.SerializeToNode(current, options)!.AsObject();
        var names = merged.Select(p => p.Key).ToDictionary(k => k, StringComparer.OrdinalIgnoreCase);
        if (!input.TryGetPropertyValue("version", out var version) || version is null || version.GetValueKind() != JsonValueKind.String
            || !Guid.TryParse(version.GetValue<string>(), out var parsed) || parsed == Guid.Empty)
        {
            return (null, ApiProblems.Invalid("version", "Send the version you read (GET the target first): it guards against overwriting someone else's change."));
        }

        var unknown = input.Select(p => p.Key).Where(k => !names.ContainsKey(k)).ToList();
        if (unknown.Count > 0)
        {
            return (null, ApiProblems.Invalid(unknown.ToDictionary(k => k, _ => new[] { $"Not a field of a target that can be changed (fields: {string.Join(", ", names.Keys.Where(k => k != "version"))})." })));
        }

        foreach (var (key, value) in input)
        {
            merged[names[key]] = value?.DeepClone();
        }

        try
        {
            return (merged.Deserialize<TargetForm>(options), null);
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path ? path.TrimStart('$', '.') : "";
            return (null, ApiProblems.Invalid(field, "This value has the wrong kind (text, number, true/false or one of the listed choices)."));
        }
    }

    /// <summary>The form's own rules, per field (camelCase names, as the JSON spells them).</summary>
    private static IResult? Validate(TargetForm input)
    {
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(input, new ValidationContext(input), results, validateAllProperties: true);
        if (results.Count == 0)
        {
            return null;
        }

        return ApiProblems.Invalid(results
            .SelectMany(r => (r.MemberNames.Any() ? r.MemberNames : [""]).Select(m => (Field: JsonNamingPolicy.CamelCase.ConvertName(m), r.ErrorMessage ?? "Not valid.")))
            .GroupBy(e => e.Field)
            .ToDictionary(g => g.Key, g => g.Select(e => e.Item2).ToArray()));
    }

    /// <summary>Refusals of the target service: a clash with the stored state is 409, a missing key is 400.</summary>
    private static IResult Refusal(TargetResult result)
    {
        var text = string.Join(" ", result.Errors);
        if (text.Contains("private key", StringComparison.OrdinalIgnoreCase))
        {
            return ApiProblems.Invalid("privateKey", text);
        }

        return ApiProblems.Conflict(text);
    }
}
