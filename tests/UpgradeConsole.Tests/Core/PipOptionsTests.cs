using UpgradeConsole.Core.Runbooks;
using UpgradeConsole.Tests.Fixtures;

namespace UpgradeConsole.Tests.Core;

/// <summary>
/// pip options on a target: what pip accepts (an option's value in the same word or the next) is accepted,
/// and whatever is accepted reaches pip word for word through a real bash, never as shell syntax.
/// </summary>
public sealed class PipOptionsTests
{
    [Theory]
    [InlineData("--timeout 60")]
    [InlineData("--timeout=60 --retries 3")]
    [InlineData("--no-index --find-links /srv/wheels")]
    [InlineData("-i https://pypi.example.org/simple --trusted-host pypi.example.org")]
    [InlineData("--no-cache-dir --progress-bar off --proxy http://proxy:3128")]
    [InlineData("")]
    public void Check_WhatPipAccepts_IsAccepted(string options) => Assert.Null(PipOptions.Check(options));

    [Theory]
    [InlineData("60", "'60' is not a pip option, nor the value of one")]
    [InlineData("--no-cache-dir 60", "'60' is not a pip option, nor the value of one")]
    [InlineData("--timeout", "--timeout needs a value (--timeout VALUE or --timeout=VALUE).")]
    [InlineData("--retries 3 --timeout", "--timeout needs a value")]
    [InlineData("--timeout 60\n--pre", "pip options are one line of words")]
    [InlineData("; rm -rf /", "';' is not a pip option")]
    public void Check_AnythingElse_SaysWhichWord(string options, string expected) =>
        Assert.StartsWith(expected, PipOptions.Check(options), StringComparison.Ordinal);

    [Fact]
    public async Task PipInstall_PassesAcceptedOptionsToPip_WordForWord_ThroughARealShell()
    {
        var ct = TestContext.Current.CancellationToken;
        var dir = Directory.CreateTempSubdirectory("uc-pip-").FullName;
        try
        {
            // A stand-in python that prints the words pip would get, one per line (and says the version is installed).
            var python = Path.Combine(dir, "python");
            await File.WriteAllTextAsync(python, "#!/bin/bash\nif [ \"$3\" = show ]; then echo 'Version: 2.17.0'; exit 0; fi\nprintf 'arg:%s\\n' \"$@\"\n", ct);
            File.SetUnixFileMode(python, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            const string options = "--timeout 60 --proxy $(touch${IFS}pwned) --find-links /srv/x;touch${IFS}pwned2";
            Assert.Null(PipOptions.Check(options));
            var settings = new FractalHostSettings(dir, python, "http://127.0.0.1:8000", "true", "true", "true", dir, PipOptions.Split(options));

            var result = await ProcessRunner.RunAsync("bash", ["-c", FractalScripts.PipInstall(settings, "2.17.0")], workingDirectory: dir);

            var args = result.StandardOutput.Split('\n').Where(l => l.StartsWith("arg:", StringComparison.Ordinal)).Select(l => l[4..]).ToList();
            Assert.Equal(["-m", "pip", "install", "--disable-pip-version-check", "--timeout", "60", "--proxy", "$(touch${IFS}pwned)",
                "--find-links", "/srv/x;touch${IFS}pwned2", "fractal-server==2.17.0"], args);
            Assert.False(File.Exists(Path.Combine(dir, "pwned")));
            Assert.False(File.Exists(Path.Combine(dir, "pwned2")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
