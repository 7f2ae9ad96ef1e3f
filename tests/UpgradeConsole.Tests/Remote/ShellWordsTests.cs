using System.Text;
using UpgradeConsole.Core.Remote;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Remote;

/// <summary>The one quoting helper, proven against a real remote shell with hostile input (the 10,000-string property test runs per transport in <see cref="RemoteShellContract"/>).</summary>
public sealed class ShellWordsTests(SshServer ssh) : IAsyncLifetime
{
    private const string Hostile = "'\"`$(){}[]*?!#&|;<>\\~ \t\n\r%^=+,.:@-_/0123456789abcXYZ";
    private static readonly string[] NonAscii = ["é", "ß", "日本", "✓", "🙂", "\u00a0", "\u2028", "Ω", "ñ"];
    private RemoteSession _remote = default!;

    public ValueTask InitializeAsync()
    {
        _remote = new RemoteSession(ssh);
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task QuotedWords_OnTheSshCommandLine_AlsoComeBackIdentical()
    {
        // The ssh command line is read by the remote login shell too: the helper must hold there.
        var random = new Random(7);
        for (var i = 0; i < 50; i++)
        {
            var value = RandomString(random);
            var result = await ProcessRunner.RunAsync("ssh", [.. ssh.ClientArguments(), "printf '%s' " + ShellWords.Quote(value)]);
            Assert.Equal(value, result.StandardOutput);
        }
    }

    [Fact]
    public void Quote_RefusesNul() => Assert.Throws<ArgumentException>(() => ShellWords.Quote("a\0b"));

    [Theory]
    [InlineData("~", "\"$HOME\"")]
    [InlineData("~/.upgradeconsole/runs", "\"$HOME\"/'.upgradeconsole/runs'")]
    [InlineData("/srv/fractal", "'/srv/fractal'")]
    [InlineData("~user/x", "'~user/x'")]
    public void QuotePath_ExpandsOnlyTheHomePrefix(string path, string expected) => Assert.Equal(expected, ShellWords.QuotePath(path));

    internal static string RandomString(Random random)
    {
        var length = random.Next(0, 40);
        var builder = new StringBuilder();
        for (var i = 0; i < length; i++)
        {
            var pick = random.Next(10);
            if (pick < 6)
            {
                builder.Append(Hostile[random.Next(Hostile.Length)]);
            }
            else if (pick < 8)
            {
                builder.Append(NonAscii[random.Next(NonAscii.Length)]);
            }
            else
            {
                // Control characters other than NUL.
                builder.Append((char)random.Next(1, 32));
            }
        }

        return builder.ToString();
    }

    internal static List<byte[]> SplitNul(byte[] output)
    {
        var parts = new List<byte[]>();
        var start = 0;
        for (var i = 0; i < output.Length; i++)
        {
            if (output[i] == 0)
            {
                parts.Add(output[start..i]);
                start = i + 1;
            }
        }

        return parts;
    }

    internal static string Escape(string value) => string.Concat(value.Select(c => c < 32 || c == '\'' ? $"\\x{(int)c:x2}" : c.ToString()));

    public async ValueTask DisposeAsync() => await _remote.DisposeAsync();
}
