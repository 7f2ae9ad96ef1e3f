using System.Diagnostics;
using System.Net;
using System.Text;

namespace UpgradeConsole.Tests.Fixtures;

/// <summary>
/// The dashboard as a real operating-system process (<c>dotnet UpgradeConsole.Web.dll</c>) on a data
/// directory, for tests that kill it the hard way (SIGKILL, no shutdown hooks) and start it again.
/// </summary>
public sealed class DashboardProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private DashboardProcess(Process process, string baseUrl)
    {
        _process = process;
        BaseUrl = baseUrl;
    }

    private static readonly TimeSpan StartLimit = TimeSpan.FromMinutes(3);

    public string BaseUrl { get; }

    /// <summary>The operating system's id of the process (a phase's claim names it).</summary>
    public int ProcessId => _process.Id;

    /// <summary>What the process printed so far (stdout and stderr).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts the dashboard on <paramref name="dataDirectory"/>, on <paramref name="port"/> when given (a restart keeps its address for open tabs).</summary>
    public static async Task<DashboardProcess> StartAsync(string dataDirectory, IReadOnlyDictionary<string, string>? settings = null, int? port = null)
    {
        port ??= ProcessRunner.FreePort();
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = dataDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "UpgradeConsole.Web.dll"));
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["UpgradeConsole__DataDirectory"] = dataDirectory;
        start.Environment["Database__Provider"] = "Sqlite";
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        if (start.Environment["Database__Provider"] == "PostgreSQL" && !start.Environment.ContainsKey("UpgradeConsole__KeyEncryptionKey"))
        {
            start.Environment["UpgradeConsole__KeyEncryptionKey"] = UpgradeConsoleApplicationFactory.TestKeyEncryptionKey;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        // Stops by itself when the test process goes, however it goes.
        ProcessRunner.CleanUpWhenTestProcessExits($"kill -9 {process.Id} 2>/dev/null");
        var dashboard = new DashboardProcess(process, $"http://127.0.0.1:{port}");
        process.OutputDataReceived += (_, e) => dashboard.Append(e.Data);
        process.ErrorDataReceived += (_, e) => dashboard.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var waited = Stopwatch.StartNew();
        // Generous: on a loaded machine (tens of runnable processes on two cores) a cold start takes minutes.
        while (waited.Elapsed < StartLimit)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The dashboard exited with {process.ExitCode}:\n{dashboard.Output}");
            }

            try
            {
                if ((await probe.GetAsync(dashboard.BaseUrl + "/healthz")).StatusCode == HttpStatusCode.OK)
                {
                    return dashboard;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            catch (TaskCanceledException)
            {
                // listening, but its first answer took longer than 5 s (a loaded machine): ask again
            }

            await Task.Delay(250);
        }

        process.Kill(entireProcessTree: true);
        throw new TimeoutException($"The dashboard did not answer /healthz within {StartLimit.TotalSeconds:0} s:\n{dashboard.Output}");
    }

    /// <summary>A cookie-keeping client that does not follow redirects, signed in through the login form.</summary>
    public async Task<HttpClient> SignInAsync(string email, string password)
    {
        var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer() };
        var client = new HttpClient(handler) { BaseAddress = new Uri(BaseUrl) };
        var response = await client.PostFormAsync("/account/login", "login", new()
        {
            ["Input.Email"] = email,
            ["Input.Password"] = password,
        });
        try
        {
            await response.ExpectRedirectAsync("/");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A refused sign-in of a restarted process: what the process logged says which database it read.
            throw new InvalidOperationException($"{ex.Message}\n--- the dashboard process's output ---\n{Output}", ex);
        }

        return client;
    }

    public bool HasExited => _process.HasExited;

    /// <summary>Waits until the process has ended by itself (a crash point killed it); false when it still runs after <paramref name="timeout"/>.</summary>
    public async Task<bool> ExitedWithinAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>SIGKILL: no graceful shutdown, exactly like a crash or an OOM kill.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: false);
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}
