using UpgradeConsole.Web.Api;

namespace UpgradeConsole.Web.Notifications;

/// <summary>A webhook as the API shows it: never its secret.</summary>
public sealed record WebhookDto(int Id, int TargetId, string Name, string Url, IReadOnlyList<string> Events, bool SlackText, bool Enabled, string CreatedBy, DateTimeOffset CreatedAt, DeliveryDto? LastDelivery)
{
    public static WebhookDto From(NotificationChannel c, NotificationDelivery? last) =>
        new(c.Id, c.TargetId, c.Name, c.Address, NotificationKinds.Names(c.Events), c.SlackText, c.Enabled, c.CreatedBy, c.CreatedAt, last is null ? null : DeliveryDto.From(last));
}

/// <summary>A webhook just made: <see cref="Secret"/> is its generated signing secret, shown this once.</summary>
public sealed record CreatedWebhookDto(WebhookDto Webhook, string? Secret);

public sealed record DeliveryDto(long Id, string Event, string Kind, string Recipient, string State, int Attempts, int? LastStatus, string? LastResponse,
    DateTimeOffset CreatedAt, DateTimeOffset? LastAttemptAt, DateTimeOffset? NextAttemptAt, int? RunId, long AuditEventId)
{
    public static DeliveryDto From(NotificationDelivery d) =>
        new(d.Id, NotificationKinds.Name(d.Event), d.Kind.ToString(), d.Recipient, d.State.ToString(), d.Attempts, d.LastStatus, d.LastResponse,
            d.CreatedAt, d.LastAttemptAt, d.NextAttemptAt, d.RunId, d.AuditEventId);
}

/// <summary>The body of a webhook create (all but <c>secret</c> required) or change (only the fields sent).</summary>
public sealed record WebhookRequest(string? Name, string? Url, IReadOnlyList<string>? Events, bool? SlackText, bool? Enabled, string? Secret);

/// <summary><c>/api/v1/targets/{id}/webhooks</c>: a target's webhooks and their delivery logs (Admin).</summary>
public static class NotificationsApi
{
    public static RouteGroupBuilder MapNotificationsApi(this RouteGroupBuilder api)
    {
        var hooks = api.MapGroup("/targets/{id:int}/webhooks").WithTags("Notifications").RequireAuthorization(ApiPolicies.Administer);

        // The list and the create on the group's own path (MapGet("") on a group would serve ".../webhooks/").
        api.MapGet("/targets/{id:int}/webhooks", async (int id, NotificationSettings settings, Targets.TargetService targets, HttpContext http, CancellationToken ct) =>
        {
            if (await targets.FindAsync(id, ct) is null)
            {
                return ApiProblems.NotFound("target");
            }

            var channels = await settings.ChannelsAsync(id, http.User, ct);
            var deliveries = await settings.DeliveriesAsync(id, null, 500, http.User, ct);
            return (IResult)TypedResults.Ok(channels.Where(c => c.Kind == ChannelKind.Webhook)
                .Select(c => WebhookDto.From(c, deliveries.FirstOrDefault(d => d.ChannelId == c.Id))).ToList());
        }).RequireAuthorization(ApiPolicies.Administer).WithTags("Notifications").Produces<List<WebhookDto>>().WithSummary("List a target's webhooks").WithDescription("Each with its last delivery (status and answer). Secrets are never returned.");

        api.MapPost("/targets/{id:int}/webhooks", async (int id, WebhookRequest input, NotificationSettings settings, HttpContext http, CancellationToken ct) =>
        {
            if (string.IsNullOrWhiteSpace(input.Url) || input.Events is null)
            {
                return ApiProblems.Invalid(new Dictionary<string, string[]>
                {
                    [string.IsNullOrWhiteSpace(input.Url) ? "url" : "events"] = [string.IsNullOrWhiteSpace(input.Url) ? "Give the receiver's URL." : "Name the events it gets (e.g. [\"run.succeeded\"])."],
                });
            }

            var result = await settings.CreateAsync(id, ChannelKind.Webhook, new ChannelInput(input.Name, input.Url, input.Events, input.SlackText ?? false, input.Enabled ?? true, input.Secret), http.User, ct);
            if (result.NotFound)
            {
                return ApiProblems.NotFound("target");
            }

            return result.Channel is null
                ? ApiProblems.Invalid("", result.Error!)
                : TypedResults.Created($"{ApiSetup.Prefix}/targets/{id}/webhooks/{result.Channel.Id}", new CreatedWebhookDto(WebhookDto.From(result.Channel, null), result.NewSecret));
        }).RequireAuthorization(ApiPolicies.Administer).WithTags("Notifications").WithSummary("Add a webhook")
            .WithDescription("Without a secret one is generated and returned once (secret). Each delivery is a POST of JSON signed in X-UpgradeConsole-Signature: sha256=<hex HMAC-SHA256 of the body>.")
            .Produces<CreatedWebhookDto>(StatusCodes.Status201Created).ProducesValidationProblem();

        hooks.MapGet("/{webhookId:int}", async (int id, int webhookId, NotificationSettings settings, HttpContext http, CancellationToken ct) =>
        {
            var channel = await settings.ChannelAsync(id, webhookId, http.User, ct);
            if (channel is not { Kind: ChannelKind.Webhook })
            {
                return ApiProblems.NotFound("webhook");
            }

            var last = (await settings.DeliveriesAsync(id, webhookId, 1, http.User, ct)) is [var first, ..] ? first : null;
            return TypedResults.Ok(WebhookDto.From(channel, last));
        }).WithSummary("Get a webhook");

        hooks.MapPatch("/{webhookId:int}", async (int id, int webhookId, WebhookRequest input, NotificationSettings settings, HttpContext http, CancellationToken ct) =>
        {
            if (await settings.ChannelAsync(id, webhookId, http.User, ct) is not { Kind: ChannelKind.Webhook })
            {
                return ApiProblems.NotFound("webhook");
            }

            var result = await settings.UpdateAsync(id, webhookId, new ChannelInput(input.Name, input.Url, input.Events, input.SlackText, input.Enabled, input.Secret), http.User, ct);
            return result.Channel is null ? ApiProblems.Invalid("", result.Error!) : TypedResults.Ok(WebhookDto.From(result.Channel, null));
        }).WithSummary("Change a webhook").WithDescription("Only the fields sent change; a new secret replaces the old one.");

        hooks.MapDelete("/{webhookId:int}", async (int id, int webhookId, NotificationSettings settings, HttpContext http, CancellationToken ct) =>
        {
            if (await settings.ChannelAsync(id, webhookId, http.User, ct) is not { Kind: ChannelKind.Webhook })
            {
                return ApiProblems.NotFound("webhook");
            }

            await settings.DeleteAsync(id, webhookId, http.User, ct);
            return TypedResults.NoContent();
        }).WithSummary("Remove a webhook").WithDescription("Its delivery log stays.");

        hooks.MapGet("/{webhookId:int}/deliveries", async (int id, int webhookId, int? take, NotificationSettings settings, HttpContext http, CancellationToken ct) =>
        {
            if (await settings.ChannelAsync(id, webhookId, http.User, ct) is not { Kind: ChannelKind.Webhook })
            {
                return ApiProblems.NotFound("webhook");
            }

            return TypedResults.Ok((await settings.DeliveriesAsync(id, webhookId, take ?? 50, http.User, ct)).Select(DeliveryDto.From).ToList());
        }).WithSummary("A webhook's delivery log").WithDescription("Newest first: each delivery's state, attempts and last answer.");

        api.MapGet("/targets/{id:int}/notifications/deliveries", async (int id, int? take, NotificationSettings settings, Targets.TargetService targets, HttpContext http, CancellationToken ct) =>
            await targets.FindAsync(id, ct) is null
                ? ApiProblems.NotFound("target")
                : (IResult)TypedResults.Ok((await settings.DeliveriesAsync(id, null, take ?? 50, http.User, ct)).Select(DeliveryDto.From).ToList()))
            .Produces<List<DeliveryDto>>().RequireAuthorization(ApiPolicies.Administer).WithTags("Notifications").WithSummary("Every notification delivery of a target (webhooks and e-mail)");
        return api;
    }
}
