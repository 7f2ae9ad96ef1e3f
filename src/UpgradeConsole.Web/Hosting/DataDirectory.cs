namespace UpgradeConsole.Web.Hosting;

/// <summary>
/// Where the dashboard keeps its state on disk: the SQLite database, SSH control sockets and
/// per-target known_hosts files. Configured by <c>UpgradeConsole:DataDirectory</c>, default
/// <c>./data</c> under the working directory.
/// </summary>
public sealed class DataDirectory
{
    public const string ConfigurationKey = "UpgradeConsole:DataDirectory";

    /// <summary>
    /// The longest path the data directory may have, in bytes. Unix socket paths hold at most 107 bytes,
    /// and the longest socket kept under it is a database forward:
    /// <c>/ssh/&lt;target id, up to 10 digits&gt;/pg-&lt;8 hex&gt;/.s.PGSQL.&lt;port&gt;</c>, 42 bytes (an SSH
    /// ControlMaster's <c>/ssh/&lt;id&gt;/cm.&lt;16 random&gt;</c> while it binds is 35).
    /// </summary>
    public const int MaxPathBytes = 107 - 42;

    private DataDirectory(string path) => Path = path;

    /// <summary>Absolute path of the directory; it exists and only its owner may enter it.</summary>
    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>A subdirectory that exists, with owner-only permissions.</summary>
    public string Subdirectory(string name)
    {
        var dir = Combine(name);
        CreatePrivate(dir);
        return dir;
    }

    public static DataDirectory FromConfiguration(IConfiguration configuration)
    {
        var configured = configuration[ConfigurationKey];
        var path = System.IO.Path.GetFullPath(string.IsNullOrWhiteSpace(configured) ? "data" : configured);
        var bytes = System.Text.Encoding.UTF8.GetByteCount(path);
        if (bytes > MaxPathBytes)
        {
            // Found at start, not at the first SSH connection ("ControlPath too long") in the middle of a run.
            throw new StartupConfigurationException(
                $"{ConfigurationKey} is {path} ({bytes} bytes); it may have at most {MaxPathBytes}, because the SSH and " +
                "database sockets kept under it must fit a Unix socket path (107 bytes). Choose a shorter path, such as /var/lib/upgradeconsole.");
        }

        CreatePrivate(path);
        return new DataDirectory(path);
    }

    private static void CreatePrivate(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
            return;
        }

        // 0700: the directory holds the database, key ring and SSH sockets. A directory that already
        // existed keeps its mode on creation, so it is made private too (or the dashboard does not start).
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Directory.CreateDirectory(path, Private);
        if (File.GetUnixFileMode(path) != Private)
        {
            try
            {
                File.SetUnixFileMode(path, Private);
            }
            catch (UnauthorizedAccessException)
            {
                throw new StartupConfigurationException(
                    $"{ConfigurationKey} {path} is open to other users ({Octal(File.GetUnixFileMode(path))}) and the dashboard cannot make it private " +
                    "(0700): it holds the database and SSH sockets. Give it to the dashboard's user, or chmod 700 it.");
            }
        }
    }

    /// <summary>Makes a file the dashboard wrote readable by its owner only (0600), if it exists.</summary>
    public static void MakePrivateFile(string file)
    {
        if (!OperatingSystem.IsWindows() && File.Exists(file))
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    private static string Octal(UnixFileMode mode) => Convert.ToString((int)mode, 8).PadLeft(4, '0');
}

/// <summary>A setting the dashboard cannot start with (see <c>Program.WithAppAsync</c>).</summary>
public sealed class StartupConfigurationException(string message) : InvalidOperationException(message);
