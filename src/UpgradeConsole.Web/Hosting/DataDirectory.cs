namespace UpgradeConsole.Web.Hosting;

/// <summary>
/// Where the dashboard keeps its state on disk: the SQLite database, SSH control sockets and
/// per-target known_hosts files. Configured by <c>UpgradeConsole:DataDirectory</c>, default
/// <c>./data</c> under the working directory.
/// </summary>
public sealed class DataDirectory
{
    public const string ConfigurationKey = "UpgradeConsole:DataDirectory";

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

        // 0700: the directory holds the database, key ring and SSH sockets.
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }
}
