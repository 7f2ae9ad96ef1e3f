namespace UpgradeConsole.Web.Hosting;

/// <summary>
/// Runs each call of an interactive page in a DI scope of its own. A circuit lives as long as its tab,
/// and a circuit-wide <c>DbContext</c> (or Identity's <c>UserManager</c>) keeps the entities it once
/// tracked: a second edit would start from stale values, and a role or "disabled" read through
/// <see cref="Accounts.UserAccess"/> could be the circuit's old copy. A fresh scope per call reads the
/// database as it is now, like a request does (the same reason <see cref="Admin.AdminUsers"/> scopes its calls).
/// </summary>
public sealed class PerCall<T>(IServiceScopeFactory scopes)
    where T : notnull
{
    public async Task<TResult> RunAsync<TResult>(Func<T, Task<TResult>> call)
    {
        ArgumentNullException.ThrowIfNull(call);
        await using var scope = scopes.CreateAsyncScope();
        return await call(scope.ServiceProvider.GetRequiredService<T>());
    }

    public async Task RunAsync(Func<T, Task> call)
    {
        ArgumentNullException.ThrowIfNull(call);
        await using var scope = scopes.CreateAsyncScope();
        await call(scope.ServiceProvider.GetRequiredService<T>());
    }
}
