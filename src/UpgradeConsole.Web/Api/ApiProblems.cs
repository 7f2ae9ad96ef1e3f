using Microsoft.AspNetCore.Mvc;

namespace UpgradeConsole.Web.Api;

/// <summary>Errors of the API as RFC 7807 problem details, each with a sentence a person can act on.</summary>
public static class ApiProblems
{
    public static IResult NotFound(string what) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found", detail: $"No {what} with this id.");

    public static IResult Conflict(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Conflict", detail: detail);

    public static IResult Forbidden(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Not allowed", detail: detail);

    /// <summary>429 with the wait in <c>Retry-After</c> (seconds) and in the sentence.</summary>
    public static IResult TooMany(HttpContext http, string detail, TimeSpan retryAfter)
    {
        var seconds = SetRetryAfter(http, retryAfter);
        return TypedResults.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests", detail: $"{detail} Try again in {seconds} s.");
    }

    /// <summary>503 with the wait in <c>Retry-After</c>: the request was not run, nothing changed.</summary>
    public static IResult Unavailable(HttpContext http, string detail, TimeSpan retryAfter)
    {
        SetRetryAfter(http, retryAfter);
        return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Busy, try again", detail: detail);
    }

    /// <summary>Whole seconds, at least one, in <c>Retry-After</c>; returns them.</summary>
    private static int SetRetryAfter(HttpContext http, TimeSpan retryAfter)
    {
        var seconds = (int)Math.Ceiling(Math.Max(1, retryAfter.TotalSeconds));
        http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return seconds;
    }

    /// <summary>400 with the offending fields (camelCase, as the request spells them).</summary>
    public static IResult Invalid(IDictionary<string, string[]> errors, string? detail = null) =>
        TypedResults.ValidationProblem(errors, detail: detail ?? "Some fields are missing or wrong; see errors.", title: "The request is not valid");

    public static IResult Invalid(string field, string error) => Invalid(new Dictionary<string, string[]> { [field] = [error] });

    /// <summary>For the authentication handler, which writes outside an endpoint.</summary>
    public static async Task WriteAsync(HttpContext http, int status, string title, string detail)
    {
        http.Response.StatusCode = status;
        if (http.Features.Get<Microsoft.AspNetCore.Diagnostics.IStatusCodePagesFeature>() is { } pages)
        {
            pages.Enabled = false;
        }

        await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = http,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }
}
