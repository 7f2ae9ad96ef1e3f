using UpgradeConsole.Tests.Fixtures;

// One PostgreSQL server, one sshd and one Chromium for the whole run; each test makes its own
// database, browser context or remote directory, so tests stay independent.
[assembly: AssemblyFixture(typeof(PostgresServer))]
[assembly: AssemblyFixture(typeof(SshServer))]
[assembly: AssemblyFixture(typeof(Chromium))]

// The fixtures drive Debian's PostgreSQL, sshd and Chromium: the suite runs on Linux.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
