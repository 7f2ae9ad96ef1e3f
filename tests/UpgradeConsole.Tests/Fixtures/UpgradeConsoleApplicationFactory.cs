using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using UpgradeConsole.Core.Accounts;
using UpgradeConsole.Web.Persistence;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// The dashboard as a test sees it: its own data directory, SQLite or a PostgreSQL database, its
/// log captured, and intent methods (<see cref="CreateFirstAdminAsync"/>, <see cref="LoginAsAsync"/>,
/// <see cref="SignedInClientAsync"/>) that go through HTTP like a person would. <see cref="ServeOverKestrel"/>
/// puts it on a real port of 127.0.0.1 for the browser.
/// </summary>
public sealed partial class UpgradeConsoleApplicationFactory : WebApplicationFactory<Program>
{
    public const string AdminEmail = "admin@example.org";
    public const string AdminPassword = "correct horse battery staple";

    private readonly bool _ownsDataDirectory;
    private bool _kestrel;
    private readonly Dictionary<string, string?> _settings = [];
    private readonly Dictionary<string, string> _passwords = [];
    private readonly Action<IServiceCollection>? _configureServices;

    public UpgradeConsoleApplicationFactory(
        DatabaseProvider provider = DatabaseProvider.Sqlite,
        string? connectionString = null,
        string? dataDirectory = null,
        Action<IServiceCollection>? configureServices = null)
    {
        _ownsDataDirectory = dataDirectory is null;
        DataDirectory = dataDirectory ?? Directory.CreateTempSubdirectory("uc-data-").FullName;
        Provider = provider;
        _configureServices = configureServices;
        _settings["UpgradeConsole:DataDirectory"] = DataDirectory;
        _settings["Database:Provider"] = provider.ToString();
        _settings["ConnectionStrings:UpgradeConsole"] = connectionString ?? "";
        if (provider == DatabaseProvider.PostgreSQL)
        {
            // Production's rule: the key ring's key-encryption key is configured, the same on every node.
            _settings["UpgradeConsole:KeyEncryptionKey"] = TestKeyEncryptionKey;
        }
    }

    /// <summary>A fixed key-encryption key (base64 of 32 bytes) for the tests' PostgreSQL dashboards and CLI processes.</summary>
    public const string TestKeyEncryptionKey = "dGVzdHMtb25seS1rZXktZW5jcnlwdGlvbi1rZXkhISE=";

    public DatabaseProvider Provider { get; }

    public string DataDirectory { get; }

    public LogCapture Logs { get; } = new();

    /// <summary>Base address of the real Kestrel server (after <see cref="ServeOverKestrel"/>).</summary>
    public string BaseUrl { get; private set; } = "http://localhost";

    /// <summary>Sets a configuration value before the application starts.</summary>
    public UpgradeConsoleApplicationFactory WithSetting(string key, string? value)
    {
        _settings[key] = value;
        return this;
    }

    /// <summary>Starts the dashboard on a free port of 127.0.0.1 and returns its base address.</summary>
    public string ServeOverKestrel()
    {
        _kestrel = true;
        UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        StartServer();
        var address = Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseUrl = address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).TrimEnd('/');
        return BaseUrl;
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        // Serve wwwroot and the build's compressed copies from the build manifest, as `dotnet run`
        // does; a published app finds both in its own wwwroot.
        builder.UseStaticWebAssets();
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        // The setup link is logged only at Debug in its own category; the tests read it from there.
        builder.ConfigureLogging(logging => logging.AddProvider(Logs).AddFilter<LogCapture>("UpgradeConsole.SetupLink", LogLevel.Debug));
        if (_configureServices is not null)
        {
            builder.ConfigureServices(_configureServices);
        }
    }

    /// <summary>A client that keeps cookies and does not follow redirects (so tests see them).</summary>
    public HttpClient CreateBrowserLikeClient()
    {
        if (!_kestrel)
        {
            return CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false, HandleCookies = true });
        }

        // Over Kestrel the factory's client would follow redirects in its socket handler; use our own.
        var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer() };
        return new HttpClient(handler) { BaseAddress = new Uri(BaseUrl) };
    }

    /// <summary>Reads the setup link the dashboard printed at start and returns its token.</summary>
    public async Task<string> ReadSetupTokenAsync()
    {
        _ = Services; // make sure the host has started
        var line = await Logs.WaitForAsync("/setup?token=");
        return SetupTokenPattern().Match(line).Groups[1].Value;
    }

    /// <summary>Creates the first Admin through the setup page and returns a client signed in as them.</summary>
    public async Task<HttpClient> CreateFirstAdminAsync(string email = AdminEmail, string password = AdminPassword)
    {
        var token = await ReadSetupTokenAsync();
        var client = CreateBrowserLikeClient();
        var response = await client.PostFormAsync($"/setup?token={token}", "setup", new()
        {
            ["token"] = token,
            ["Input.Email"] = email,
            ["Input.Password"] = password,
            ["Input.Confirm"] = password,
        });
        await response.ExpectRedirectAsync("/");
        _passwords[email] = password;
        return client;
    }

    /// <summary>Signs in through the login page; fails the test if the dashboard refuses.</summary>
    public async Task<HttpClient> LoginAsAsync(string email, string password)
    {
        var client = CreateBrowserLikeClient();
        var response = await client.PostFormAsync("/account/login", "login", new()
        {
            ["Input.Email"] = email,
            ["Input.Password"] = password,
        });
        await response.ExpectRedirectAsync("/");
        return client;
    }

    /// <summary>
    /// A client signed in as a user with <paramref name="role"/>: the first Admin is created on
    /// first use, other users through the admin page, as an Admin would.
    /// </summary>
    public async Task<HttpClient> SignedInClientAsync(string role)
    {
        var admin = _passwords.ContainsKey(AdminEmail)
            ? await LoginAsAsync(AdminEmail, AdminPassword)
            : await CreateFirstAdminAsync();
        if (role == Roles.Admin)
        {
            return admin;
        }

        var email = $"{role.ToLowerInvariant()}@example.org";
        if (!_passwords.TryGetValue(email, out var password))
        {
            password = await CreateUserAsync(admin, email, role);
        }

        return await LoginAsAsync(email, password);
    }

    /// <summary>The e-mail of the user <see cref="SignedInClientAsync"/> signs in with <paramref name="role"/> (created on first use).</summary>
    public async Task<string> SignedInEmailAsync(string role)
    {
        await SignedInClientAsync(role);
        return role == Roles.Admin ? AdminEmail : $"{role.ToLowerInvariant()}@example.org";
    }

    /// <summary>
    /// Adds a user (as the Admin <paramref name="admin"/> would on the users page) and returns their generated
    /// password. The users page is interactive (no form to post), so this goes through the page's own
    /// service; ManagingUsersTests drives the page itself in the browser.
    /// </summary>
    public async Task<string> CreateUserAsync(HttpClient admin, string email, string role)
    {
        ArgumentNullException.ThrowIfNull(admin);
        await using var scope = Services.CreateAsyncScope();
        // As the first Admin, through the page's service: the same role check and the same audit event.
        var users = scope.ServiceProvider.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<UpgradeConsole.Web.Accounts.AppUser>>();
        var acting = (await users.GetUsersInRoleAsync(Roles.Admin)).OrderBy(u => u.Email, StringComparer.Ordinal).FirstOrDefault(u => u.Email == AdminEmail)
            ?? (await users.GetUsersInRoleAsync(Roles.Admin)).FirstOrDefault() ?? throw new InvalidOperationException("Create the first Admin first.");
        var actor = new System.Security.Claims.ClaimsPrincipal(new System.Security.Claims.ClaimsIdentity(
            [new(System.Security.Claims.ClaimTypes.NameIdentifier, acting.Id), new(System.Security.Claims.ClaimTypes.Name, acting.Email!), new(System.Security.Claims.ClaimTypes.Role, Roles.Admin)], "test"));
        var result = await scope.ServiceProvider.GetRequiredService<UpgradeConsole.Web.Admin.AdminUsers>().CreateAsync(actor, email, role, password: null);
        Assert.True(result.Succeeded, $"Creating {email} failed: {string.Join("; ", result.Errors)}");
        var password = result.GeneratedPassword!;
        _passwords[email] = password;
        return password;
    }

    /// <summary>
    /// The principal the dashboard builds for <paramref name="email"/> at sign-in (roles, security stamp), to call
    /// an interactive page's service as that person: the pages have no form to post, and the service checks the
    /// role the person holds in the database on every call, as it does for the page.
    /// </summary>
    public async Task<System.Security.Claims.ClaimsPrincipal> PrincipalOfAsync(string email = AdminEmail)
    {
        await using var scope = Services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<UpgradeConsole.Web.Accounts.AppUser>>();
        var user = await users.FindByEmailAsync(email) ?? throw new InvalidOperationException($"No user {email}.");
        var signIn = scope.ServiceProvider.GetRequiredService<Microsoft.AspNetCore.Identity.SignInManager<UpgradeConsole.Web.Accounts.AppUser>>();
        return await signIn.CreateUserPrincipalAsync(user);
    }

    /// <summary>Calls <typeparamref name="TService"/> in a scope of its own as <paramref name="email"/>, as an interactive page does.</summary>
    public async Task<T> AsAsync<TService, T>(string email, Func<TService, System.Security.Claims.ClaimsPrincipal, Task<T>> call)
        where TService : notnull
    {
        ArgumentNullException.ThrowIfNull(call);
        var actor = await PrincipalOfAsync(email);
        await using var scope = Services.CreateAsyncScope();
        return await call(scope.ServiceProvider.GetRequiredService<TService>(), actor);
    }

    /// <summary>
    /// Adds a target as the first Admin, through the targets page's service (the same role check, validation
    /// and audit event as the form), and returns its id. <paramref name="fields"/> are <see cref="UpgradeConsole.Web.Targets.TargetForm"/>
    /// property names; the rest keep the form's defaults. TargetInTheBrowserTests fills the form itself.
    /// </summary>
    public async Task<int> AddTargetAsync(Dictionary<string, string> fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        var form = new UpgradeConsole.Web.Targets.TargetForm();
        foreach (var (name, text) in fields)
        {
            var property = typeof(UpgradeConsole.Web.Targets.TargetForm).GetProperty(name) ?? throw new ArgumentException($"The target form has no field {name}.", nameof(fields));
            var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            object? value = type.IsEnum ? Enum.Parse(type, text)
                : type == typeof(int) ? int.Parse(text, System.Globalization.CultureInfo.InvariantCulture)
                : type == typeof(bool) ? bool.Parse(text)
                : text;
            property.SetValue(form, value);
        }

        var result = await AsAsync<UpgradeConsole.Web.Targets.TargetService, UpgradeConsole.Web.Targets.TargetResult>(AdminEmail, (s, actor) => s.CreateAsync(form, actor));
        Assert.True(result.Succeeded, "Adding the target failed: " + string.Join("; ", result.Errors));
        return result.TargetId!.Value;
    }

    /// <summary>Pins the host key with <paramref name="fingerprint"/> as the first Admin (the service scans the host again first).</summary>
    public async Task PinHostKeyAsync(int targetId, string fingerprint, bool jump = false)
    {
        var result = await AsAsync<UpgradeConsole.Web.Targets.TargetService, UpgradeConsole.Web.Targets.TargetResult>(AdminEmail, (s, actor) => s.PinAsync(targetId, fingerprint, jump, actor));
        Assert.True(result.Succeeded, "Pinning failed: " + string.Join("; ", result.Errors));
    }

    /// <summary>Every audit event so far, oldest first, read through the application's own database context.</summary>
    public async Task<List<UpgradeConsole.Web.Audit.AuditEvent>> AuditEventsAsync()
    {
        await using var scope = Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<UpgradeConsole.Web.Persistence.AppDbContext>();
        return await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ToListAsync(
            Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.AsNoTracking(db.AuditEvents).OrderBy(e => e.Id));
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (_ownsDataDirectory && Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
    }

    [GeneratedRegex(@"/setup\?token=([A-Za-z0-9_\-]+)")]
    private static partial Regex SetupTokenPattern();

}
