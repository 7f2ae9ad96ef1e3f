// The dashboard drives the OpenSSH client and ssh-agent through Unix sockets: it runs on Linux.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
