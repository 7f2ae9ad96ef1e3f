// The dashboard drives the OpenSSH client through Unix sockets (ControlMaster, forwards): it runs on Linux.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
